"""Every role serves Prometheus metrics on its METRICS_PORT (never on the web port) counting what
it really did; the monitor measures from outside what no role can say of itself: a group's lag
growing while its role is down and draining once it runs, the outbox, the projection."""
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from apps.sync import tasks
from apps.todos import services
from tests.conftest import WebRole
from tests.helpers import api_client, free_port, unique, wait_until
from tests.realtime.test_sockets import token
from tests.realtime.wsclient import Socket


def scrape(port: int) -> dict[tuple, float]:
    """{(sample name, ((label, value), ...)): value} of the endpoint; {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(port: int, name: str, **labels) -> float | None:
    """The sum of the samples of `name` whose labels include `labels` (None: no such sample)."""
    found = [v for (sample, pairs), v in scrape(port).items()
             if sample == name and set(labels.items()) <= set(pairs)]
    return sum(found) if found else None


def becomes(port: int, name: str, expected, **labels) -> None:
    """Poll until the metric satisfies `expected` (a number, or a predicate of the value)."""
    check = expected if callable(expected) else (lambda v: v == expected)
    wait_until(lambda: (v := value(port, name, **labels)) is not None and check(v),
               what=f"{name}{labels} to be {expected} on :{port} (last: {value(port, name, **labels)})")


def test_each_role_serves_metrics_of_what_it_did(roles, user_factory, tmp_path, event_topics):
    ports = {name: free_port() for name in ("web", "relay", "projections", "scheduler", "worker", "beat")}
    web = WebRole(roles, tmp_path / "web.log", env={"METRICS_PORT": str(ports["web"])})
    web.start()
    roles("runrelay", env={"METRICS_PORT": str(ports["relay"])})
    roles("runconsumer", "projections", "--group-id", unique("projection"),
          env={"METRICS_PORT": str(ports["projections"])})
    roles("runscheduler", env={"METRICS_PORT": str(ports["scheduler"])})
    roles("-A", "polystack", "worker", "--pool", "threads", "--concurrency", "1", "--loglevel", "WARNING",
          module="celery", env={"METRICS_PORT": str(ports["worker"])})
    roles("-A", "polystack", "beat", "--schedule", str(tmp_path / "beat-schedule"), "--loglevel", "WARNING",
          module="celery", env={"METRICS_PORT": str(ports["beat"])})

    alice = user_factory()
    for n in range(3):
        # 202 when the roles, still starting on a busy machine, projected it after the bound
        answer = api_client(alice).post("/api/todos/", {"title": f"counted {n}"}, format="json")
        assert answer.status_code in (201, 202), answer.content
    becomes(ports["relay"], "polystack_relay_published_events_total", 3)
    becomes(ports["projections"], "polystack_consumer_messages_total", 3, consumer="projections", outcome="handled")
    assert value(ports["projections"], "polystack_consumer_batch_size_count", consumer="projections") >= 1
    assert value(ports["projections"], "polystack_consumer_handle_seconds_count", consumer="projections") >= 1
    assert value(ports["projections"], "polystack_consumer_rebalances_total", consumer="projections",
                 event="assigned") >= 1
    assert value(ports["projections"], "polystack_consumer_assigned_partitions", consumer="projections") >= 1

    # The web role: responses by class, sockets open and frames sent; nothing on the public port.
    with urllib.request.urlopen(f"{web.base}/healthz", timeout=5):
        pass
    becomes(ports["web"], "polystack_http_responses_total", lambda v: v >= 1, status="2xx")
    try:
        urllib.request.urlopen(f"{web.base}/metrics", timeout=5)
        raise AssertionError("the web port serves /metrics")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    socket = Socket(web.base, token=token(alice))
    becomes(ports["web"], "polystack_ws_connections", 1, socket="todos")
    socket.send({"type": "ping"})
    socket.read_until(lambda frame: frame["type"] == "pong", what="pong")
    assert value(ports["web"], "polystack_ws_frames_sent_total", socket="todos") >= 1
    socket.close()
    becomes(ports["web"], "polystack_ws_connections", 0, socket="todos")

    # Celery: a task the worker ran, counted by name and outcome; beat and the scheduler answer.
    tasks.prune_records.apply_async(queue=event_topics)
    becomes(ports["worker"], "polystack_celery_tasks_total", 1, task="apps.sync.tasks.prune_records", outcome="success")
    becomes(ports["scheduler"], "polystack_reminder_lateness_seconds_count", 0)
    becomes(ports["beat"], "process_cpu_seconds_total", lambda v: v > 0)


def test_the_monitor_sees_a_groups_lag_grow_while_its_role_is_down_and_drain_when_it_runs(roles, user_factory):
    group, port = unique("projection"), free_port()
    roles("runmonitor", "--group-id", f"projections={group}", env={"METRICS_PORT": str(port)})
    becomes(port, "polystack_probe_up", 1, probe="consumer-groups")

    # The projection's role is not running: the relay publishes, the group's lag grows.
    roles("runrelay")
    alice = user_factory()
    for n in range(5):
        services.todo_create(actor=alice, title=f"waiting {n}", correlation_id=f"lag-{n}")
    becomes(port, "polystack_outbox_backlog", 0)
    becomes(port, "polystack_consumer_group_lag", 5, group=group)
    becomes(port, "polystack_projection_lag", 5)
    assert value(port, "polystack_consumer_group_members", group=group) == 0

    roles("runconsumer", "projections", "--group-id", group)
    becomes(port, "polystack_consumer_group_lag", 0, group=group)
    becomes(port, "polystack_projection_lag", 0)
    assert value(port, "polystack_projection_position") == 5
    assert value(port, "polystack_consumer_group_members", group=group) == 1
    assert value(port, "polystack_consumer_group_state", group=group, state="Stable") == 1
