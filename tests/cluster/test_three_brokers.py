"""The three-broker cluster (`make test-cluster`: KAFKA_BROKERS=3): topics with 3 replicas that
take a write once 2 have it, and a broker SIGKILLed under load costs no acknowledged command —
each has exactly one event, in version order — while the roles keep serving; restarted, the
broker catches up and every partition is fully replicated again."""
import json
import subprocess
from collections import Counter, defaultdict

import pytest
from confluent_kafka.admin import ConfigResource
from django.conf import settings

from apps.projections.models import TodoView
from polystack.ops import kafka_view
from polystack.streaming import kafka
from polystack.streaming.topics import TODO_EVENTS, resolve, resolved_specs
from tests.helpers import ROOT, api_client, consume_to_end, unique, wait_until

pytestmark = pytest.mark.cluster


def node(action: str, number: int) -> None:
    subprocess.run([str(ROOT / "scripts" / "stack.sh"), "node", action, str(number)], check=True,
                   capture_output=True, text=True)


def fully_replicated(topics: list[str]) -> bool:
    views = kafka_view.topics(kafka.admin_client(), topics)
    return all(t.under_replicated == 0 and all(p.leader is not None for p in t.partitions) for t in views)


@pytest.fixture(autouse=True)
def _three_brokers():
    assert settings.KAFKA_REPLICATION_FACTOR == 3, "run these with make test-cluster (KAFKA_BROKERS=3)"
    assert len(kafka.admin_client().list_topics(timeout=10).brokers) == 3
    yield
    for number in (1, 2, 3):
        node("start", number)  # whatever a failed test left down
    wait_until(lambda: len(kafka.admin_client().list_topics(timeout=5).brokers) == 3, timeout=120,
               what="three brokers again")


def test_every_topic_has_three_replicas_and_takes_a_write_once_two_have_it(event_topics):
    admin = kafka.admin_client()
    names = [spec.name for spec in resolved_specs()]
    for view in kafka_view.topics(admin, names):
        assert all(len(p.replicas) == 3 and len(p.in_sync) == 3 for p in view.partitions), view.name
    configs = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name) for name in names])
    for resource, future in configs.items():
        assert future.result()["min.insync.replicas"].value == "2", resource.name
    assert kafka.producer_config()["acks"] == "all"


def test_a_broker_killed_under_load_loses_no_acknowledged_command(roles, user_factory, event_topics):
    roles("runrelay")
    roles("runconsumer", "projections", "--group-id", unique("projection"))
    client = api_client(user_factory())
    acknowledged = []
    for n in range(300):
        if n == 100:
            node("kill", 2)  # it leads a third of the partitions: they move, mid-flight
        if n == 200:
            node("start", 2)
        answer = client.post("/api/todos/", {"title": f"under fire {n}"}, format="json")
        assert answer.status_code in (201, 202), answer.content
        todo = answer.json()["id"]
        assert client.patch(f"/api/todos/{todo}/", {"title": f"renamed {n}"}, format="json").status_code in (200, 202)
        acknowledged.append(todo)

    topic = resolve(TODO_EVENTS)
    wait_until(lambda: len(consume_to_end(topic)) >= 2 * len(acknowledged), timeout=120,
               what="every acknowledged command's event on todo-events")
    by_todo = defaultdict(list)
    for message in consume_to_end(topic):
        envelope = json.loads(message.value())
        by_todo[envelope["aggregateId"]].append(envelope["aggregateVersion"])
    assert Counter(len(versions) for versions in by_todo.values()) == {2: len(acknowledged)}, "one event each"
    assert all(versions == [1, 2] for versions in by_todo.values()), "in version order"
    assert set(by_todo) == set(acknowledged)
    wait_until(lambda: TodoView.objects.filter(title__startswith="renamed").count() == len(acknowledged),
               timeout=120, what="the projection caught up")
    wait_until(lambda: fully_replicated([topic]), timeout=120, what="node 2 back in every in-sync replica set")
