"""Valid todo event streams made up for tests and benchmarks, straight onto a topic."""
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer

from apps.todos import events
from polystack.streaming import kafka

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def todo_stream(*, user_id: int, todo_id: uuid.UUID | None = None, length: int = 5, rng: random.Random) -> list[dict]:
    """One todo's events: created, then `length - 1` changes, validated like the producer does."""
    todo_id = todo_id or uuid.UUID(int=rng.getrandbits(128), version=4)
    moment = BASE_TIME + timedelta(seconds=rng.randrange(10**6))
    stream = []

    def add(event_type: str, data: dict) -> None:
        nonlocal moment
        moment += timedelta(seconds=rng.randrange(1, 600))
        stream.append(events.new_envelope(
            event_type=event_type, aggregate_id=todo_id, aggregate_version=len(stream) + 1, user_id=str(user_id),
            data={"todoId": str(todo_id), **data}, correlation_id=f"synthetic-{len(stream)}",
            occurred_at=moment, metadata={"notificationRequired": False, "affectedUsers": [str(user_id)],
                                          "category": events.CATEGORIES[event_type], "actorId": str(user_id)},
        ))

    stamp = lambda: events.iso(moment + timedelta(seconds=1))  # noqa: E731
    add(events.TODO_CREATED, {"title": f"todo {todo_id.hex[:6]}", "description": "", "userId": str(user_id),
                              "createdAt": stamp(), "priority": "medium", "dueDate": None, "teamId": None})
    for n in range(length - 1):
        kind = rng.choice([events.TODO_UPDATED, events.TODO_PRIORITIZED, events.TODO_ASSIGNED])
        if kind == events.TODO_UPDATED:
            add(kind, {"title": f"title {n}", "description": "d" * rng.randrange(50), "updatedAt": stamp()})
        elif kind == events.TODO_PRIORITIZED:
            add(kind, {"priority": rng.choice(events.PRIORITIES), "prioritizedAt": stamp()})
        else:
            add(kind, {"assignedTo": str(rng.randrange(1, 50)), "assignedAt": stamp()})
    return stream


def interleave(streams: list[list[dict]], rng: random.Random) -> list[dict]:
    """Mix several todos' streams, keeping each todo's own order."""
    cursors = [0] * len(streams)
    live = [i for i, s in enumerate(streams) if s]
    out = []
    while live:
        i = rng.choice(live)
        out.append(streams[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(streams[i]):
            live.remove(i)
    return out


def publish(topic: str, envelopes: list[dict | bytes], *, key: str | None = None) -> None:
    producer = Producer(kafka.producer_config(**{"linger.ms": 20, "queue.buffering.max.messages": 1_000_000}))
    for envelope in envelopes:
        if isinstance(envelope, bytes):
            value, message_key = envelope, (key or "0").encode()
        else:
            value, message_key = json.dumps(envelope).encode(), (key or envelope["userId"]).encode()
        kafka.produce(producer, topic, key=message_key, value=value)
    assert producer.flush(60) == 0
