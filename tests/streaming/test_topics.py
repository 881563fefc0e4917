"""Topics as code: ensure_topics creates what is missing, reports drift and changes nothing else."""
import pytest
from django.conf import settings
from django.core.management import call_command

from polystack.streaming import kafka
from polystack.streaming.topic_admin import ensure_topics
from polystack.streaming.topics import TOPICS, TopicSpec
from tests.helpers import create_topic, delete_topics, unique


@pytest.fixture
def specs():
    specs = [
        TopicSpec(unique("ensure"), partitions=3, description="t", config={"retention.ms": "-1"}),
        TopicSpec(unique("ensure"), partitions=1, description="t", config={"cleanup.policy": "compact"}),
    ]
    yield specs
    delete_topics(s.name for s in specs if s.name in kafka.admin_client().list_topics(timeout=10).topics)


def test_first_run_creates_and_second_run_changes_nothing(specs):
    admin = kafka.admin_client()
    first = ensure_topics(admin=admin, specs=specs, replication_factor=1)
    assert [r.status for r in first] == ["created", "created"]

    second = ensure_topics(admin=admin, specs=specs, replication_factor=1)
    assert [(r.status, r.drift) for r in second] == [("ok", []), ("ok", [])]
    metadata = admin.list_topics(timeout=10).topics
    assert len(metadata[specs[0].name].partitions) == 3


def test_drift_is_reported_and_left_alone(specs):
    spec = specs[0]
    create_topic(spec.name, partitions=2, config={"retention.ms": "1000"})
    admin = kafka.admin_client()

    [report] = ensure_topics(admin=admin, specs=[spec], replication_factor=1)

    assert report.status == "drift"
    assert report.drift == ["partitions 2, declared 3", "retention.ms=1000, declared -1"]
    assert len(admin.list_topics(timeout=10).topics[spec.name].partitions) == 2, "not repartitioned"


def test_check_mode_creates_nothing(specs):
    [report, _] = ensure_topics(admin=kafka.admin_client(), specs=specs, replication_factor=1, create=False)
    assert report.status == "missing"
    assert specs[0].name not in kafka.admin_client().list_topics(timeout=10).topics


def test_ensuretopics_command_twice_reports_every_declared_topic_ok(capsys):
    call_command("ensuretopics")
    capsys.readouterr()
    call_command("ensuretopics")
    out = capsys.readouterr().out
    for spec in TOPICS:
        assert f"ok       {spec.name}" in out
    assert "created" not in out


def test_event_store_keeps_events_forever():
    todo_events = next(spec for spec in TOPICS if spec.name == "todo-events")
    assert todo_events.config["retention.ms"] == "-1"
    assert todo_events.partitions == 6
    assert settings.KAFKA_REPLICATION_FACTOR == 1
