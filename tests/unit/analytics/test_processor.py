"""The stream processor against the batch recomputation, without Kafka: random timelines, some
events out of order (within and beyond the grace period), cut into random batches, must give
exactly the window values apps.analytics.verify computes in one pass (pure logic)."""
import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from apps.analytics import facts
from apps.analytics.processor import WindowProcessor
from apps.analytics.verify import recompute
from apps.analytics.windows import BY_TOPIC
from apps.todos import events
from polystack.streaming.registry import Message
from polystack.streaming.state import PartitionStore
from polystack.streaming.topics import resolve
from polystack.streaming.transactional import Batch
from tests.analytics.synthetic import activity

TOPIC = "todo-events"
T0 = datetime(2026, 3, 2, tzinfo=UTC)


class Raw:
    """What confluent-kafka's Message answers, for a message that never was on a broker."""

    def __init__(self, partition: int, offset: int, key: bytes, value: bytes, timestamp: int):
        self._args = (partition, offset, key, value, timestamp)

    def topic(self): return TOPIC
    def partition(self): return self._args[0]
    def offset(self): return self._args[1]
    def key(self): return self._args[2]
    def value(self): return self._args[3]
    def timestamp(self): return 1, self._args[4]
    def headers(self): return None


def messages_of(envelopes: list[dict], rng: random.Random, *, shuffle_ms: int) -> list[Raw]:
    """Two partitions; now and then an event's time is moved back by up to `shuffle_ms`."""
    now = facts.epoch_ms(events.iso(datetime.now(UTC)))
    offsets, raws = defaultdict(int), []
    for envelope in envelopes:
        if rng.random() < 0.15:
            moved = datetime.fromisoformat(envelope["occurredAt"]) - timedelta(milliseconds=rng.randrange(shuffle_ms))
            envelope = {**envelope, "occurredAt": events.iso(moved)}
        partition = int(envelope["userId"]) % 2
        raws.append(Raw(partition, offsets[partition], envelope["userId"].encode(), json.dumps(envelope).encode(), now))
        offsets[partition] += 1
    return raws


def run_stream(raws: list[Raw], rng: random.Random) -> tuple[dict, set]:
    """Fold the messages batch by batch as the transactional loop does; the window rows it
    leaves (the last value sent for each window) and the late drops it reported."""
    processor, stores = WindowProcessor(), {p: PartitionStore(changelog="c", partition=p, path=None) for p in (0, 1)}
    latest: dict[tuple[str, bytes], dict] = {}
    late = set()
    at = 0
    while at < len(raws):
        size = rng.choice([1, 2, 7, 50, 400])
        batch = Batch(messages=[Message(raw, raw.value()) for raw in raws[at:at + size]], stores=stores)
        at += size
        processor.process(batch)
        assert not batch.rejected
        for topic, key, value, _ in batch.outputs:
            record = json.loads(value)
            if topic == resolve("analytics-late-events"):
                late.add((record["window"], record["topic"], record["partition"], record["offset"], record["start"]))
            else:
                latest[(topic, key)] = record
        for store in stores.values():
            store.committed(store.changes(), None)
    rows = {}
    for (topic, _), record in latest.items():
        spec = BY_TOPIC[topic.removeprefix(resolve(""))]
        for team, metric, dim, value in facts.rows_of(spec.shape, record["value"]):
            rows[(spec.name, metric, int(record["userId"]), record["start"], team or None, dim)] = value
    return rows, late


@pytest.mark.parametrize("seed", range(6))
@override_settings(ANALYTICS_GRACE_MS=10 * 60_000)
def test_the_stream_in_random_batches_equals_the_batch_recomputation(seed):
    rng = random.Random(seed)
    envelopes = activity(users=[1, 2, 3, 4, 5], count=600, start=T0, span=timedelta(hours=30), seed=seed,
                         teams={"0b5e7c1e-0000-4000-8000-000000000003": [1, 2, 3]})
    raws = messages_of(envelopes, rng, shuffle_ms=3 * 3600_000)
    stream_rows, late = run_stream(raws, rng)
    assert late, "some events were later than the grace period"
    report = recompute(((TOPIC, r.partition(), r.offset(), r.key(), r.value(), r.timestamp()[1]) for r in raws),
                       late=late)
    expected = {(w, m, o, int((s - facts.EPOCH).total_seconds() * 1000), t, d): v
                for (w, m, o, s, t, d), v in report.expected.items()}
    assert stream_rows == expected
