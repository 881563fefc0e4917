"""Fixtures of the sync tests: the coordinator and sink roles, and reading device-sync-events
as a device's stream is read (read_committed), or with everything written (read_uncommitted)."""
import subprocess
import sys
import time

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from polystack.streaming import kafka, topics
from polystack.streaming.topics import resolve
from tests import helpers
from tests.conftest import failed


def read(topic: str, *, committed: bool, timeout: float = 60.0) -> list:
    """Every record of `topic` up to its end now, as a consumer of that isolation level reads it."""
    stop_at = kafka.topic_ends(topic, committed=committed)
    consumer = Consumer(kafka.base_config(**{
        "group.id": helpers.unique("reader"), "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed else "read_uncommitted"}))
    remaining = {p for p, end in stop_at.items() if end > 0}
    consumer.assign([TopicPartition(topic, p, 0) for p in remaining])
    got, deadline = [], time.monotonic() + timeout
    try:
        while remaining:
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout} s"
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                if not message.error() and message.offset() < stop_at[message.partition()]:
                    got.append(message)
            remaining -= {tp.partition for tp in consumer.position([TopicPartition(topic, p) for p in remaining])
                          if tp.offset >= stop_at[tp.partition]}
    finally:
        consumer.close()
    return got


def records(committed: bool = True) -> list[dict]:
    """device-sync-events' records, decoded, with their key and position."""
    return [{**orjson.loads(m.value()), "key": m.key().decode(), "partition": m.partition(), "offset": m.offset()}
            for m in read(resolve(topics.DEVICE_SYNC_EVENTS), committed=committed)]


class SyncRoles:
    """`runconsumer sync` processes (instances of one group) and the sink, logging to files."""

    def __init__(self, roles, tmp_path):
        self.roles, self.tmp_path = roles, tmp_path
        self.group = helpers.unique("sync")
        self.logs = []

    def coordinator(self, instance: str = "0", **env) -> subprocess.Popen:
        log = open(self.tmp_path / f"sync-{instance}-{len(self.logs)}.log", "w")
        self.logs.append(log)
        return self.roles("runconsumer", "sync", "--group-id", self.group, "--instance", instance,
                          "--state-dir", str(self.tmp_path / f"state-{instance}"), env=env, stdout=log,
                          stderr=subprocess.STDOUT)

    def sink(self) -> subprocess.Popen:
        log = open(self.tmp_path / f"sink-{len(self.logs)}.log", "w")
        self.logs.append(log)
        self.sink_group = helpers.unique("sync-sink")
        return self.roles("runconsumer", "sync-sink", "--group-id", self.sink_group, stdout=log,
                          stderr=subprocess.STDOUT)

    def caught_up(self) -> bool:
        """The relay published everything and the coordinator committed all of it."""
        from apps.todos.models import OutboxEvent

        return not OutboxEvent.objects.exists() and helpers.caught_up(self.group, resolve(topics.TODO_EVENTS))

    def log(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.tmp_path.glob("*.log")))

    def log_of(self, instance: str) -> str:
        return "\n".join(path.read_text() for path in sorted(self.tmp_path.glob(f"sync-{instance}-*.log")))


@pytest.fixture
def sync(roles, tmp_path, request):
    started = SyncRoles(roles, tmp_path)
    yield started
    for log in started.logs:
        log.close()
    if failed(request.node):
        for path in sorted([*tmp_path.glob("sync*.log"), *tmp_path.glob("sink*.log")]):
            print(f"----- {path.name} (last 4,000 characters) -----\n{path.read_text()[-4000:]}", file=sys.stderr)
    admin = kafka.admin_client()  # the coordinator's changelog topic is named after its group
    helpers.delete_topics(name for name in admin.list_topics(timeout=10).topics if started.group in name)


@pytest.fixture
def synced(web, sync, roles):
    """The whole sync path running: web, relay, coordinator, sink. The web's base URL."""
    roles("runrelay")
    sync.coordinator()
    sync.sink()
    return web
