"""The outbox relay under failure: rows committed out of id order, and a row for a missing topic.
(Its Kafka outage test is in tests/test_outages.py, with the other tests of the fault port.)"""
import json
import subprocess
import uuid

import psycopg
from django.utils import timezone

from apps.todos import events, services
from apps.todos.models import OutboxEvent
from polystack import db
from polystack.streaming.topics import TODO_EVENTS, resolve
from tests.helpers import consume_all, wait_until


def published(expected: int, timeout: float = 30.0) -> list[dict]:
    return [json.loads(m.value()) for m in consume_all(resolve(TODO_EVENTS), expected, timeout=timeout)]


def test_a_row_committed_after_a_higher_id_is_still_published(roles, user_factory):
    """The classic outbox bug: ids are allocated before commit, so rows become visible out of
    id order. A relay that kept `id > last_id` would skip the late row forever."""
    alice = user_factory(username="alice")
    roles("runrelay")
    todo_id = uuid.uuid4()
    now = timezone.now()
    late_envelope = events.new_envelope(
        event_type=events.TODO_CREATED, aggregate_id=todo_id, aggregate_version=1, user_id=str(alice.pk),
        data={"todoId": str(todo_id), "title": "late", "description": "", "userId": str(alice.pk),
              "createdAt": events.iso(now), "priority": "low", "dueDate": None, "teamId": None},
        correlation_id="late", occurred_at=now, metadata={
            "notificationRequired": False, "affectedUsers": [str(alice.pk)], "category": "created",
            "actorId": str(alice.pk)},
    )
    with psycopg.connect(db.conninfo()) as slow:  # a transaction that takes its id, then lingers
        services.outbox_append(slow.cursor(), [late_envelope])
        late_id = slow.execute("SELECT lastval()").fetchone()[0]
        early = services.todo_create(actor=alice, title="early", correlation_id="early")
        assert published(1)[0]["aggregateId"] == str(early.todo_id), "the later id went out first"
        early_id = slow.execute("SELECT last_value FROM todos_outboxevent_id_seq").fetchone()[0]
        assert late_id < early_id
        slow.execute("SELECT pg_notify(%s, '')", [services.OUTBOX_CHANNEL])
        slow.commit()

    envelopes = published(2)
    assert [e["correlationId"] for e in envelopes] == ["early", "late"]
    wait_until(lambda: not OutboxEvent.objects.all().exists(), what="both published and removed from the outbox")


def test_a_row_for_a_missing_topic_stops_the_relay_with_one_clear_line(roles, user_factory):
    alice = user_factory(username="alice")
    services.todo_create(actor=alice, title="lost", correlation_id="lost")
    OutboxEvent.objects.update(topic="no-such-topic")
    relay = roles("runrelay", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = relay.communicate(timeout=60)  # it must stop by itself
    assert relay.returncode == 2
    assert "no-such-topic" in err and "ensuretopics" in err
    assert OutboxEvent.objects.count() == 1, "the row waits in the outbox"
