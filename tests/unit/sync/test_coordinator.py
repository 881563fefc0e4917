"""The sync coordinator's fold and routing, without Kafka: a record per event and recipient,
each carrying the todo after the event; duplicates skipped; events that do not continue their
todo's history rejected (pure logic)."""
import json
import random
import uuid

import orjson
import pytest

from apps.sync.coordinator import SyncCoordinator, UnsyncableEventError
from apps.todos import events
from polystack.streaming.registry import Message
from polystack.streaming.state import PartitionStore
from polystack.streaming.transactional import Batch
from tests.sync.synthetic import Todos, recipients


class Raw:
    def __init__(self, offset: int, envelope: dict):
        self._offset, self._value = offset, json.dumps(envelope).encode()

    def topic(self): return "todo-events"
    def partition(self): return 0
    def offset(self): return self._offset
    def key(self): return None
    def value(self): return self._value
    def headers(self): return None


def run(envelopes: list[dict], store: PartitionStore, batch_size: int = 7) -> tuple[list[tuple], list]:
    """Process the events batch by batch as the transactional loop does; the records sent
    (key, value) and the rejected messages' errors."""
    coordinator, sent, rejected = SyncCoordinator(), [], []
    for start in range(0, len(envelopes), batch_size):
        chunk = envelopes[start:start + batch_size]
        batch = Batch(messages=[Message(Raw(start + i, e), json.loads(json.dumps(e))) for i, e in enumerate(chunk)],
                      stores={0: store})
        coordinator.process(batch)
        store.committed(store.changes(), None)
        sent += [(key.decode(), orjson.loads(value)) for _, key, value, _ in batch.outputs]
        rejected += [error for _, error in batch.rejected]
    return sent, rejected


def test_every_event_goes_to_each_recipient_once_with_the_todo_after_it():
    stream = Todos(users=[1, 2, 3, 4], team=[1, 2, 3], rng=random.Random(7))
    envelopes = [stream.event() for _ in range(400)]
    sent, rejected = run(envelopes, PartitionStore(changelog="c", partition=0, path=None))
    assert rejected == []
    assert [(r["event"]["eventId"], key) for key, r in sent] == recipients(envelopes)
    latest: dict[str, dict] = {}
    for key, record in sent:
        assert record["recipient"] == key
        event, todo = record["event"], record["todo"]
        if event["eventType"] == events.TODO_DELETED:
            assert todo is None and record["visible"] is False
            continue
        assert todo["id"] == event["aggregateId"] and todo["version"] == event["aggregateVersion"]
        assert record["visible"] is (key not in event["metadata"].get("formerUsers", ()))
        before = latest.get(todo["id"])
        if before is not None:  # the todo after the event: the one before with the event's change
            assert todo["createdAt"] == before["createdAt"] and todo["userId"] == before["userId"]
        latest[todo["id"]] = todo
        if event["eventType"] == events.TODO_ASSIGNED:
            assert todo["assignedTo"] == event["data"]["assignedTo"]
        if event["eventType"] == events.TODO_COMPLETED:
            assert todo["completed"] is True


def test_a_duplicate_is_skipped_and_what_breaks_the_history_is_rejected():
    stream = Todos(users=[1], team=[], rng=random.Random(3))
    first = stream.event()
    second = stream.event() if stream.todos else None
    while second is None or second["aggregateId"] != first["aggregateId"]:
        second = stream.event()
    store = PartitionStore(changelog="c", partition=0, path=None)
    sent, rejected = run([first, first, second, second], store)
    assert [r["event"]["eventId"] for _, r in sent] == [first["eventId"], second["eventId"]]
    assert rejected == []

    gap = {**second, "eventId": str(uuid.uuid4()), "aggregateVersion": second["aggregateVersion"] + 2}
    unknown = {**second, "eventId": str(uuid.uuid4()), "aggregateId": str(uuid.uuid4()),
               "data": {**second["data"], "todoId": str(uuid.uuid4())}}
    recreated = {**first, "eventId": str(uuid.uuid4()), "aggregateVersion": 3}
    sent, rejected = run([gap, unknown, recreated], store)
    assert sent == []
    assert [type(error) for error in rejected] == [UnsyncableEventError] * 3
    assert "missing" in str(rejected[0]) and "never created" in str(rejected[1])


def test_nothing_follows_a_deletion():
    stream = Todos(users=[1], team=[], rng=random.Random(5))
    envelopes = [stream.event() for _ in range(200)]
    deleted = next(e for e in envelopes if e["eventType"] == events.TODO_DELETED)
    after = {**deleted, "eventId": str(uuid.uuid4()), "eventType": events.TODO_PRIORITIZED,
             "aggregateVersion": deleted["aggregateVersion"] + 1, "metadata": {**deleted["metadata"],
                                                                              "category": "priority"},
             "data": {"todoId": deleted["aggregateId"], "priority": "low", "prioritizedAt": deleted["occurredAt"]}}
    store = PartitionStore(changelog="c", partition=0, path=None)
    _, rejected = run([*envelopes, after], store)
    assert len(rejected) == 1 and "after its deletion" in str(rejected[0])
    assert store.get(f"todo:{deleted['aggregateId']}") == {"version": deleted["aggregateVersion"],
                                                            "deleted_at": deleted["data"]["deletedAt"]}


@pytest.mark.parametrize("payload", [[], {"eventType": "TodoCreated"}, "text"])
def test_what_is_not_a_todo_event_is_rejected(payload):
    batch = Batch(messages=[Message(Raw(0, {}), payload)], stores={0: PartitionStore(changelog="c", partition=0,
                                                                                    path=None)})
    SyncCoordinator().process(batch)
    assert batch.outputs == [] and len(batch.rejected) == 1
