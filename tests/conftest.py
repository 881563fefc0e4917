"""Fixtures over the real local stack (scripts/stack.sh up): one broker for the whole session."""
import subprocess
import sys
from pathlib import Path

import pytest

from polystack.streaming import kafka
from tests import helpers


UNIT = Path(__file__).resolve().parent / "unit"


# Modules that take minutes (seconds in a run of the whole suite, see --durations) start first:
# `make test`'s workers each take whole modules, and a long one taken last would run alone at
# the end while the other workers idle (make test keeps this order: --no-loadscope-reorder; else
# pytest-xdist would send the modules with the most tests first). The chaos run first of all: it
# takes minutes in processes of its own, beside the rest of the suite.
SLOW_MODULES = ("tests/chaos/test_short_run.py", "tests/test_outages.py", "tests/analytics/test_stream.py", "tests/reminders/test_scheduler.py",
                "tests/reminders/test_delivery.py", "tests/projections/test_projection.py",
                "tests/sync/test_syncclient.py", "tests/sync/test_coordinator.py", "tests/web/test_browser.py",
                "tests/web/test_sync_page.py", "tests/sync/test_push.py")


def pytest_collection_modifyitems(items):
    slow = {path: rank for rank, path in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: slow.get(item.nodeid.split("::")[0], len(slow)))  # stable: the rest keep their order


def _needs_the_stack(session) -> bool:
    """tests/unit/ is pure logic and runs without Kafka, PostgreSQL or Redis (`make unit`)."""
    return any(UNIT not in Path(item.path).parents for item in session.items)


@pytest.fixture(scope="session", autouse=True)
def _stack_is_up(request):
    if not _needs_the_stack(request.session):
        return
    try:
        kafka.check_reachable(timeout=10)
    except kafka.KafkaUnreachableError as exc:
        pytest.exit(f"{exc}. Start the stack: make stack-up", returncode=2)


@pytest.fixture(scope="session", autouse=True)
def _stop_projection_watcher(request):
    """The read-your-writes listener holds a connection to the test database: close it before
    pytest-django drops that database."""
    if not _needs_the_stack(request.session):
        yield
        return
    request.getfixturevalue("django_db_setup")
    yield
    from apps.projections.waiting import watcher

    watcher.stop()


@pytest.fixture
def topic_factory():
    """Create topics private to one test; delete them afterwards."""
    created: list[str] = []

    def make(partitions: int = 1, prefix: str = "test", config: dict | None = None) -> str:
        name = helpers.create_topic(helpers.unique(prefix), partitions, config)
        created.append(name)
        return name

    yield make
    helpers.delete_topics(created)


@pytest.fixture
def event_topics(settings):
    """Every declared topic under a prefix of this test's own; the settings point at them."""
    from polystack.streaming.topic_admin import ensure_topics
    from polystack.streaming.topics import resolved_specs

    prefix = helpers.unique("t") + "."
    settings.KAFKA_TOPIC_PREFIX = prefix
    specs = resolved_specs()
    ensure_topics(admin=kafka.admin_client(), specs=specs, replication_factor=settings.KAFKA_REPLICATION_FACTOR)
    yield prefix
    helpers.delete_topics(spec.name for spec in specs)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test, for fixtures to see in their teardown whether it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed(node) -> bool:
    """Whether the test failed (in its setup or its call), by the reports pytest_runtest_makereport kept."""
    return any(getattr(node, f"report_{when}", None) is not None and getattr(node, f"report_{when}").failed
               for when in ("setup", "call"))


@pytest.fixture
def roles(transactional_db, event_topics, settings, tmp_path, request):
    """Start roles (`runrelay`, `runconsumer projections`, ...) as real processes on the test
    database and this test's topics; stopped at the end of the test. What a role prints goes
    to a file in the test's tmp_path (unless the caller takes it): a pipe nobody reads would
    fill and stall the role. When the test failed, the end of each log is shown with it."""
    from django.db import connection

    params = connection.settings_dict
    database_url = f"postgres://{params['USER']}:{params['PASSWORD']}@{params['HOST']}:{params['PORT']}/{params['NAME']}"
    settings.READ_YOUR_WRITES_TIMEOUT_S = 15.0  # processes start slowly on a busy machine
    started, logs = [], []

    def start(*args: str, env: dict | None = None, **kwargs):
        log = None
        if "stdout" not in kwargs and "stderr" not in kwargs:
            path = tmp_path / f"role-{len(started)}-{'-'.join(args[:2])}.log"
            logs.append(path)
            log = path.open("w")
            kwargs.update(stdout=log, stderr=subprocess.STDOUT)
        process = helpers.manage(
            *args,
            env={"DATABASE_URL": database_url, "KAFKA_TOPIC_PREFIX": event_topics, "CELERY_QUEUE": event_topics,
                 **(env or {})},
            **kwargs,
        )
        if log is not None:
            log.close()  # the process has its own
        started.append(process)
        return process

    yield start
    # Killed, not stopped: a graceful stop (leave the group, commit, close) is what the shutdown
    # tests test; here it only cost a second or two a test. Their topics and groups are the
    # test's own, and go with it.
    for process in started:
        if process.poll() is None:
            process.kill()
    for process in started:
        helpers.stop(process)
    if failed(request.node):
        for path in logs:
            print(f"----- {path.name} (last 4,000 characters) -----\n{path.read_text()[-4000:]}", file=sys.stderr)


@pytest.fixture
def pipeline(roles, tmp_path):
    """The command path the API's answers wait for: the relay and the projection, on this
    test's topics and a group of its own; up, so that a command answers 201 (read your writes)
    however long the processes took to start on a loaded machine."""
    roles("runrelay")
    roles("runconsumer", "projections", "--group-id", helpers.unique("projection"))

    def said(pattern: str, text: str) -> bool:
        return any(text in path.read_text() for path in tmp_path.glob(pattern))

    helpers.wait_until(lambda: said("role-*-runrelay.log", "relay active")
                       and said("role-*-runconsumer-projections.log", " assigned "),
                       timeout=90, what="the relay active and the projection assigned its partitions")


@pytest.fixture
def user_factory(db):
    from tests.factories import UserFactory

    return UserFactory


@pytest.fixture
def alice_client(user_factory):
    return helpers.api_client(user_factory(username="alice"))


class WebRole:
    """The web role (daphne: HTTP and WebSockets) on a free loopback port, which a test may stop
    (the server gone, as a browser without network sees it) and start again on the same port.
    Its log goes to a file: a pipe nobody reads would fill up and stall the server."""

    def __init__(self, roles, log_path, env: dict | None = None):
        self.roles, self.log_path, self.env, self.process = roles, log_path, env, None
        self.port = helpers.free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            self.process = self.roles(*helpers.web_role_args(self.port), module="daphne",
                                      env=self.env, stdout=log, stderr=subprocess.STDOUT)
        # A generous bound: a Django start took 30 s while the suite's heaviest tests ran beside it.
        helpers.wait_until(self.up, timeout=90, what=f"the web role on {self.base} (log: {self.log_path})")

    def stop(self) -> None:
        self.process.kill()
        helpers.stop(self.process)

    def up(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False


@pytest.fixture
def web_role(roles, tmp_path):
    """The web role, started: `.base`, `.stop()`, `.start()`."""
    role = WebRole(roles, tmp_path / "web.log")
    role.start()
    return role


@pytest.fixture
def web(web_role):
    """The web role's base URL."""
    return web_role.base


@pytest.fixture
def smtp():
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives: `.messages`."""
    inbox = helpers.MailInbox(helpers.free_port())
    inbox.start()
    yield inbox
    inbox.stop()


@pytest.fixture
def notifier(roles, smtp):
    """Start the notification role (`runconsumer notifications`, a group of its own unless named)
    sending email to the `smtp` fixture, its retry delays shrunk twentyfold (2, 10, 60 s become
    0.1, 0.5 and 3 s)."""

    def start(group: str | None = None):
        return roles("runconsumer", "notifications", "--group-id", group or helpers.unique("notifications"),
                     env={"EMAIL_PORT": str(smtp.port), "STREAMING_RETRY_DELAY_SCALE": "0.05",
                          "DJANGO_DEBUG": "0"})  # as deployed: templates compiled once, queries not recorded

    return start
