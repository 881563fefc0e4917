"""A dependency going away takes nothing down (the roles are real processes, each wired to
PostgreSQL, Redis and Kafka through a proxy that the test cuts, while the test itself keeps
direct access to check the outcome): every role keeps running and resumes by itself, the web
answers 503 with Retry-After for what needs the missing piece, every command accepted is
published exactly once and projected, and sockets catch up."""
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import connection

from apps.todos.models import OutboxEvent
from polystack.streaming.topics import TODO_EVENTS, resolve
from tests.faults import CuttableProxy, hold
from tests.helpers import api_client, consume_to_end, free_port, stop, unique, wait_until, web_role_args
from tests.realtime.test_sockets import closed_with, token
from tests.realtime.wsclient import Socket
from tests.todos.test_relay import published as relay_published

# The Kafka proxy listens on the broker's one FAULTY port: every test that cuts Kafka is in this
# module, which `make test` runs on one worker (--dist loadfile).
KAFKA_PORT = 9092  # the broker's FAULTY listener listens at +100 and advertises +200 (scripts/stack.sh)


@pytest.fixture
def proxies(event_topics):
    redis_port = int(settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    cut = SimpleNamespace(
        kafka=CuttableProxy(listen_port=KAFKA_PORT + 200, target_port=KAFKA_PORT + 100).start(),
        postgresql=CuttableProxy(listen_port=free_port(), target_port=int(connection.settings_dict["PORT"])).start(),
        redis=CuttableProxy(listen_port=free_port(), target_port=redis_port).start(),
    )
    yield cut
    for proxy in vars(cut).values():
        proxy.stop()


@pytest.fixture
def system(roles, proxies, tmp_path):
    params = connection.settings_dict
    env = {
        "DATABASE_URL": f"postgres://{params['USER']}:{params['PASSWORD']}@127.0.0.1:{proxies.postgresql.address[1]}"
                        f"/{params['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{proxies.redis.address[1]}/0",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA_PORT + 200}",
        "READ_YOUR_WRITES_TIMEOUT_S": "3",
    }
    port = free_port()
    logs = {}

    def start(name, *args, **kwargs):
        logs[name] = open(tmp_path / f"{name}.log", "w")
        return roles(*args, env=env, stdout=logs[name], stderr=subprocess.STDOUT, **kwargs)

    processes = {
        "web": start("web", *web_role_args(port), module="daphne"),
        "relay": start("relay", "runrelay"),
        "projections": start("projections", "runconsumer", "projections", "--group-id", unique("projection")),
        "realtime": start("realtime", "runconsumer", "realtime", "--group-id", unique("realtime")),
    }
    base = f"http://127.0.0.1:{port}"
    # A generous bound: a Django start took 30 s while the suite's heaviest tests ran beside it.
    wait_until(lambda: call(base, "GET", "/healthz")[0] == 200, timeout=90, what="the web role")
    yield SimpleNamespace(base=base, processes=processes, logs=tmp_path)
    for process in processes.values():  # while the proxies still carry their goodbyes
        stop(process)
    for log in logs.values():
        log.close()


def call(base: str, method: str, path: str, body: dict | None = None, key: str | None = None):
    """(status, JSON body, headers) of one request; status None when nobody answered."""
    request = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Token {key}"} if key else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null"), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), error.headers
    except OSError:
        return None, None, {}


def all_running(system) -> None:
    dead = {name: p.returncode for name, p in system.processes.items() if p.poll() is not None}
    assert not dead, f"roles exited: {dead} (logs in {system.logs})"


def published_once(expected: int) -> list[dict]:
    # The relay deletes a row once Kafka acknowledged it: with the outbox empty it has nothing
    # left to publish, again or at all, and the topic holds all it ever will.
    wait_until(lambda: not OutboxEvent.objects.exists(), timeout=60, what="the outbox emptied by the relay")
    envelopes = [json.loads(m.value()) for m in consume_to_end(resolve(TODO_EVENTS))]
    twice = [event for event, n in Counter(e["eventId"] for e in envelopes).items() if n > 1]
    assert not twice, f"published twice: {twice}"
    assert len(envelopes) == expected
    return envelopes


def projected(system, key: str, todo_ids: list[str]) -> bool:
    return all(call(system.base, "GET", f"/api/todos/{todo}/", key=key)[0] == 200 for todo in todo_ids)


def create(system, key: str, title: str) -> str:
    status, body, _ = call(system.base, "POST", "/api/todos/", {"title": title}, key)
    assert status in (201, 202), (status, body)
    return body["id"]


def commands_during(system, key: str, todos: list[str], seconds: float) -> None:
    """Create a todo every 10 s while the outage lasts; every role must keep running."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        todos.append(create(system, key, f"during {len(todos)}"))
        hold(10)
        all_running(system)


def every_command_landed_once(system, key: str, todos: list[str], timeout: float) -> None:
    wait_until(lambda: projected(system, key, todos), timeout=timeout, what="every todo projected")
    published_once(len(todos))


def test_kafka_down_for_a_minute(system, proxies, user_factory):
    key = token(user_factory())
    todos = [create(system, key, "before")]
    socket = Socket(system.base, token=key, after={})
    socket.read_until(lambda f: f["type"] == "ready")

    proxies.kafka.cut()
    commands_during(system, key, todos, 60)  # commands keep succeeding: the outbox holds the events
    proxies.kafka.restore()

    every_command_landed_once(system, key, todos, timeout=120)

    def every_frame_seen(frame=None) -> bool:
        return set(todos) <= {event["aggregateId"] for event in socket.events()}

    if not every_frame_seen():  # the live frames of what was held up come once Kafka is back
        socket.read_until(every_frame_seen, timeout=60, what="a frame of every todo")
    all_running(system)


def test_redis_down_for_half_a_minute(system, proxies, user_factory):
    key = token(user_factory())
    todos = [create(system, key, "before")]
    socket = Socket(system.base, token=key, after={})
    socket.read_until(lambda f: f["type"] == "event" and f["event"]["aggregateId"] == todos[0])

    proxies.redis.cut()
    commands_during(system, key, todos, 30)  # the API needs no Redis (throttles let requests through)
    proxies.redis.restore()

    every_command_landed_once(system, key, todos, timeout=60)
    # Its live stream broke with Redis (pushes meanwhile were lost): the socket was told to
    # reconnect, and reconnecting from its position catches up what it missed.
    assert closed_with(socket) == 4503
    again = Socket(system.base, token=key, after=socket.positions())
    again.read_until(lambda f: f["type"] == "ready", timeout=30)
    seen = {e["aggregateId"] for e in socket.events() + again.events()}
    assert set(todos) <= seen
    created = create(system, key, "after")
    again.read_until(lambda f: f["type"] == "event" and f["event"]["aggregateId"] == created, timeout=60,
                     what="live frames again")
    all_running(system)


def test_postgresql_down_for_half_a_minute(system, proxies, user_factory):
    key = token(user_factory())
    todos = [create(system, key, "before")]

    proxies.postgresql.cut()
    started = time.monotonic()
    while time.monotonic() - started < 30:
        status, _, headers = call(system.base, "POST", "/api/todos/", {"title": "refused"}, key)
        assert status == 503 and headers["Retry-After"], status  # not 500, not a dead port
        assert call(system.base, "GET", "/healthz")[0] == 200
        ready = call(system.base, "GET", "/readyz")
        assert ready[0] == 503 and "postgresql" in ready[1]["unavailable"]
        hold(5)
        all_running(system)
    proxies.postgresql.restore()

    def accepted():
        status, body, _ = call(system.base, "POST", "/api/todos/", {"title": "after"}, key)
        return body["id"] if status in (201, 202) else None

    todos.append(wait_until(accepted, timeout=60, what="commands accepted again"))
    todos.append(create(system, key, "after, again"))
    every_command_landed_once(system, key, todos, timeout=60)
    all_running(system)


@pytest.fixture
def partition():
    proxy = CuttableProxy(listen_port=KAFKA_PORT + 200, target_port=KAFKA_PORT + 100).start()
    yield proxy
    proxy.stop()


def test_kafka_outage_the_relay_alone_publishes_every_event_once_in_order_after_it(roles, user_factory, settings, partition):
    alice = user_factory(username="alice")
    settings.READ_YOUR_WRITES_TIMEOUT_S = 0.05  # no projection here: commands answer 202
    roles("runrelay", env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{KAFKA_PORT + 200}"})
    client = api_client(alice)
    first = client.post("/api/todos/", {"title": "before"}, format="json").json()
    assert relay_published(1)[0]["aggregateId"] == first["id"]

    partition.cut()
    ids = [first["id"]]
    for n in range(5):
        response = client.post("/api/todos/", {"title": f"during {n}"}, format="json")
        assert response.status_code == 202
        ids.append(response.json()["id"])
    for todo_id in ids[:3]:
        for priority in ("low", "high", "urgent"):
            assert client.post(f"/api/todos/{todo_id}/prioritize/", {"priority": priority},
                               format="json").status_code == 202
    assert OutboxEvent.objects.all().count() == 14, "waiting in the outbox"

    partition.restore()
    wait_until(lambda: not OutboxEvent.objects.all().exists(), timeout=90,
               what="the outbox drained after the broker came back")
    envelopes = relay_published(15, timeout=30)
    assert len({e["eventId"] for e in envelopes}) == len(envelopes), "none twice"
    assert len(relay_published(16, timeout=3)) == 15, "nothing beyond the fifteen"
    versions = defaultdict(list)
    for envelope in envelopes:
        versions[envelope["aggregateId"]].append(envelope["aggregateVersion"])
    for todo_id in ids:
        expected = [1, 2, 3, 4] if todo_id in ids[:3] else [1]
        assert versions[todo_id] == expected, "in order"
