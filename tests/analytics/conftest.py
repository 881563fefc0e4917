"""The analytics roles as real processes on this test's topics, database and state folder."""
import subprocess
import time

import pytest
from django.db import connection

from polystack.streaming import kafka
from tests import helpers


class AnalyticsRoles:
    def __init__(self, roles, tmp_path):
        self._roles = roles
        self.tmp_path = tmp_path
        self.state_dir = tmp_path / "state"
        self.group = helpers.unique("analytics")
        self.stream = None
        self.sink = None
        self._rows = (-1, 0.0)  # analytics_window's row count, and since when
        self.quiet_s = 0.5

    def start_stream(self, **env):
        log = open(self.tmp_path / "analytics.log", "a")
        self.stream = self._roles("runconsumer", "analytics", "--group-id", self.group, "--state-dir",
                                  str(self.state_dir), env=env, stdout=log, stderr=subprocess.STDOUT)
        return self.stream

    def start_sink(self):
        log = open(self.tmp_path / "sink.log", "a")
        self.sink = self._roles("runconsumer", "analytics-sink", "--group-id", self.group + "-sink",
                                stdout=log, stderr=subprocess.STDOUT)
        return self.sink

    def start(self, **env):
        self.start_stream(**env)
        self.start_sink()

    def alive(self) -> None:
        for name, process in (("analytics", self.stream), ("analytics-sink", self.sink)):
            if process is not None and process.poll() is not None:
                log = self.tmp_path / ("analytics.log" if name == "analytics" else "sink.log")
                raise AssertionError(f"{name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")

    def agree(self) -> bool:
        """Whether the batch recomputation equals what the stream stored (and both roles run).
        The recomputation reads the whole topic: it is tried once the sink has written nothing
        new for `quiet_s`, not while rows are still pouring in (a recomputation of 100,000
        events takes seconds)."""
        from apps.analytics.verify import verify

        self.alive()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM analytics_window")
            count = cursor.fetchone()[0]
        if count != self._rows[0]:
            self._rows = (count, time.monotonic())
            return False
        if time.monotonic() - self._rows[1] < self.quiet_s:
            return False
        report = verify()
        self._rows = (-1, 0.0)  # if it disagrees, wait for the next quiet moment
        return bool(report.expected) and not report.differences

    def log(self) -> str:
        return (self.tmp_path / "analytics.log").read_text()


@pytest.fixture
def analytics(roles, tmp_path):
    """Start with .start(); the analytics_window table starts empty (users in synthetic
    events are made-up ids, which other tests may use too)."""
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE analytics_window")
    started = AnalyticsRoles(roles, tmp_path)
    yield started
    for process in (started.stream, started.sink):
        if process is not None:
            helpers.stop(process)
    # Quix made the state stores' changelog topics, named after the group.
    admin = kafka.admin_client()
    helpers.delete_topics(name for name in admin.list_topics(timeout=10).topics if started.group in name)
