"""Rebuild the todo projection from `todo-events`, aside, then swap it in.

Readers never see a half-built projection: the rebuild fills `*_rebuild` tables while the
live projection keeps serving and applying live events. At the end, holding the exclusive
projection lock (live applies wait), the rebuild catches up to the topic's end and the tables
are swapped by rename in one transaction. Live events that arrive during the rebuild are not
lost: the rebuild reads them itself, and the live consumer, resuming after the swap, finds
them applied (same versions: no-ops) or applies what came later.
"""
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import OffsetSpec
from django.db import connection, transaction

from apps.projections import store
from apps.projections.consumers import to_item
from apps.projections.models import Snapshot
from polystack.streaming import kafka
from polystack.streaming.registry import Message, NonRetriableError, decode_json
from polystack.streaming.topics import TODO_EVENTS, resolve

logger = logging.getLogger("apps.projections.replay")


class ReplayError(Exception):
    pass


@dataclass
class ReplayProgress:
    done: int
    total: int
    elapsed_s: float
    phase: str  # "rebuilding", "catching up", "swapped"

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / self.rate if self.rate and self.total > self.done else 0
        return (f"{self.phase}: {self.done:,}/{self.total:,} events ({pct:.1f}%), "
                f"{self.rate:,.0f} events/s, {self.elapsed_s:.1f} s elapsed, ETA {eta:.0f} s")


@dataclass
class ReplayResult:
    applied: int
    rejected: int
    snapshot_id: int | None
    elapsed_s: float


def replay(
    *,
    from_snapshot: bool = False,
    batch_size: int = 5000,
    progress: Callable[[ReplayProgress], None] | None = None,
    progress_every_s: float = 1.0,
) -> ReplayResult:
    started = time.monotonic()
    snapshot = None
    if from_snapshot:
        snapshot = Snapshot.objects.order_by("-id").first()
        if snapshot is None:
            raise ReplayError("there is no snapshot yet; take one with `manage.py snapshot projections`")
    start = store.prepare_rebuild(snapshot_id=snapshot.pk if snapshot else None)
    topic = resolve(TODO_EVENTS)

    consumer = Consumer(kafka.base_config(**{
        "group.id": f"projections-replay-{uuid.uuid4().hex[:8]}",  # assign() only; nothing is committed
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }))
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        lows = _watermarks(topic, partitions, OffsetSpec.earliest())
        positions = {p: max(start.get((topic, p), lows[p]), lows[p]) for p in partitions}
        consumer.assign([TopicPartition(topic, p, positions[p]) for p in partitions])
        counters = {"applied": 0, "rejected": 0, "done": 0}
        last_report = 0.0

        def report(phase: str, total: int, force: bool = False) -> None:
            nonlocal last_report
            now = time.monotonic()
            if progress and (force or now - last_report >= progress_every_s):
                progress(ReplayProgress(counters["done"], total, now - started, phase))
                last_report = now

        targets = _ends(consumer, topic, partitions)
        total = _remaining(positions, targets)
        _consume_until(consumer, topic, positions, targets, batch_size, counters, lambda: report("rebuilding", total))

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [store.LOCK_KEY])  # live applies wait
            targets = _ends(consumer, topic, partitions)
            total = counters["done"] + _remaining(positions, targets)
            _consume_until(consumer, topic, positions, targets, batch_size, counters, lambda: report("catching up", total))
            store.swap_in_rebuild(cursor)
        report("swapped", counters["done"], force=True)
    finally:
        consumer.close()
    return ReplayResult(counters["applied"], counters["rejected"], snapshot.pk if snapshot else None,
                        time.monotonic() - started)


def _watermarks(topic: str, partitions: list[int], spec: OffsetSpec) -> dict[int, int]:
    """Earliest or latest offsets of every partition in one admin request."""
    admin = kafka.admin_client()
    futures = admin.list_offsets({TopicPartition(topic, p): spec for p in partitions}, request_timeout=10)
    return {tp.partition: future.result().offset for tp, future in futures.items()}


def _ends(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, int]:
    return _watermarks(topic, partitions, OffsetSpec.latest())


def _remaining(positions: dict[int, int], targets: dict[int, int]) -> int:
    return sum(max(targets[p] - positions[p], 0) for p in targets)


def _consume_until(consumer, topic: str, positions: dict[int, int], targets: dict[int, int], batch_size: int,
                   counters: dict, tick) -> None:
    """Apply events to the rebuild tables until every partition reached its target offset.
    `positions` (the next offset per partition) is updated as the events are applied."""
    pending = {p for p in targets if positions[p] < targets[p]}
    while pending:
        batch = consumer.consume(num_messages=batch_size, timeout=0.2)
        if not batch:
            # Control records (transaction markers) end a partition without a message.
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= targets[tp.partition]:
                    positions[tp.partition] = tp.offset
                    pending.discard(tp.partition)
            continue
        items = []
        for message in batch:
            if message.error() is not None:
                continue
            counters["done"] += 1
            positions[message.partition()] = message.offset() + 1
            try:
                items.append(to_item(Message(message, decode_json(message.value()))))
            except NonRetriableError as exc:
                counters["rejected"] += 1
                logger.warning("replay skips %s[%d]@%d: %s", message.topic(), message.partition(), message.offset(), exc)
        rejected = store.apply_items(tables=store.REBUILD, items=items, live=False)
        counters["rejected"] += len(rejected)
        counters["applied"] += len(items) - len(rejected)
        pending = {p for p in pending if positions[p] < targets[p]}
        tick()
