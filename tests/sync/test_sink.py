"""The sync sink against the real broker and database: every committed record of
device-sync-events stored once (read again, nothing changes), each user's todos as of their
last record, and records nobody's coordinator wrote parked in the DLQ while the sink goes on."""
import json
import random
import uuid

from apps.sync.models import SyncRecord, SyncTodo, SyncUser
from polystack.streaming import topics
from polystack.streaming.topics import resolve
from tests import helpers
from tests.projections.synthetic import publish
from tests.sync.conftest import records
from tests.sync.synthetic import Todos

USERS = list(range(8001, 8007))


def stored() -> list[tuple]:
    return sorted(SyncRecord.objects.values_list("partition", "offset", "user_id", "event_id", "version"))


def test_records_are_stored_once_and_forged_ones_go_to_the_dlq(sync):
    stream = Todos(users=USERS, team=USERS[:3], rng=random.Random(21))
    envelopes = [stream.event() for _ in range(300)]
    publish(resolve(topics.TODO_EVENTS), envelopes)
    sync.coordinator()
    helpers.wait_until(sync.caught_up, timeout=60, what="the coordinator through every event")
    written = records()

    real = next(r for r in written if r["todo"] is not None)
    event = real["event"]
    forged = [
        (b"8001", b"not json"),
        (b"nobody", json.dumps({k: real[k] for k in ("recipient", "visible", "todo", "event")}).encode()),
        (b"8002", json.dumps({**{k: real[k] for k in ("visible", "todo", "event")}, "recipient": "8001"}).encode()),
        (b"9999", json.dumps({"recipient": "9999", "visible": True, "todo": real["todo"], "event": event}).encode()),
        (real["key"].encode(), json.dumps({"recipient": real["key"], "visible": True, "event": event,
                                           "todo": {**real["todo"], "id": str(uuid.uuid4())}}).encode()),
        (real["key"].encode(), json.dumps({"recipient": real["key"], "visible": True, "event": event,
                                           "todo": None}).encode()),
        (real["key"].encode(), json.dumps({"recipient": real["key"], "visible": True, "event": event,
                                           "todo": {**real["todo"], "title": 7}}).encode()),
    ]
    producer_topic = resolve(topics.DEVICE_SYNC_EVENTS)
    helpers.produce(producer_topic, [value for _, value in forged], key=lambda i: forged[i][0])
    sync.sink()
    letters = helpers.wait_until(lambda: len(helpers.consume_to_end(resolve(topics.DEVICE_SYNC_EVENTS_DLQ))) == 7
                                 and helpers.consume_to_end(resolve(topics.DEVICE_SYNC_EVENTS_DLQ)), timeout=60,
                                 what="the forged records in the DLQ")
    assert {dict(m.headers())["dlq.error.class"] for m in letters} <= {b"BadSyncRecordError", b"InvalidEventError"}
    helpers.wait_until(lambda: SyncRecord.objects.count() == len(written), timeout=60, what="every record stored")
    before = stored()
    assert before == sorted((r["partition"], r["offset"], int(r["key"]), uuid.UUID(r["event"]["eventId"]),
                             r["event"]["aggregateVersion"]) for r in written)

    # Each user's todos: as their newest record of each left them.
    newest = {}
    for r in sorted(written, key=lambda r: r["offset"]):
        newest[(int(r["key"]), r["event"]["aggregateId"])] = r
    todos = {(user, str(todo)): (version, visible) for user, todo, version, visible in
             SyncTodo.objects.values_list("user_id", "todo_id", "version", "visible")}
    assert todos == {key: (r["event"]["aggregateVersion"], r["visible"]) for key, r in newest.items()}
    heads = dict(SyncUser.objects.values_list("user_id", "offset"))
    assert heads == {user: max(r["offset"] for r in written if int(r["key"]) == user) for user in heads}

    # A second sink reading everything again (a group of its own) stores nothing twice.
    sync.sink()
    helpers.wait_until(lambda: helpers.caught_up(sync.sink_group, producer_topic), timeout=60,
                       what="the second sink through the topic")
    assert stored() == before
