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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import OffsetSpec
from django.db import connection, transaction

from apps.projections import services
from apps.projections.consumers import apply_or_isolate, to_item
from apps.projections.models import Snapshot
from apps.todos.events import UnknownVersionError
from polystack import db
from polystack.streaming import kafka
from polystack.streaming.registry import Message, NonRetriableError, decode_json
from polystack.streaming.topics import TODO_EVENTS, resolve

logger = logging.getLogger("apps.projections.replay")


# One replay at a time: two would drop and fill the same *_rebuild tables. A session-level
# advisory lock on a connection of the replay's own: it goes when the replay ends, or dies.
_HOLDER_PREFIX = "polystack replay since "
MAX_LISTED = 5


class ReplayError(Exception):
    pass


class ReplayRunningError(ReplayError):
    pass


class ReplayRefusedError(ReplayError):
    """The rebuild is not swapped in: events that should have applied did not."""


@contextmanager
def _only_replay() -> Iterator[None]:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    with psycopg.connect(db.conninfo(), autocommit=True, application_name=_HOLDER_PREFIX + since) as lock:
        if not lock.execute("SELECT pg_try_advisory_lock(%s)", [db.AdvisoryLock.REPLAY]).fetchone()[0]:
            holder = lock.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",  # per database
                [db.AdvisoryLock.REPLAY]).fetchone()
            started = holder[0].removeprefix(_HOLDER_PREFIX) if holder else "a moment ago"
            raise ReplayRunningError(f"a replay is already running since {started}; try again when it has finished")
        yield


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
    rejected: int  # messages that are not events (undecodable, against their schema): skipped
    snapshot_id: int | None
    elapsed_s: float
    skipped: list[str] = field(default_factory=list)  # the first few of those, where and why
    retention_start: dict[int, int] = field(default_factory=dict)  # partitions whose first event is gone

    def warnings(self) -> list[str]:
        lines = [f"skipped {self.rejected:,} messages that are not valid events (as the live projection "
                 f"does: they are in its DLQ): {'; '.join(self.skipped)}"] if self.rejected else []
        if self.retention_start:
            lines.append(_retention_warning(self.retention_start))
        return lines


def _retention_warning(retention_start: dict[int, int]) -> str:
    starts = ", ".join(f"partition {p} at offset {o:,}" for p, o in sorted(retention_start.items()))
    return (f"replayed from above offset 0 because retention removed older events ({starts}): "
            "todos whose first events are gone cannot be rebuilt")


def _where(message) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"


def replay(
    *,
    from_snapshot: bool = False,
    batch_size: int = 5000,
    progress: Callable[[ReplayProgress], None] | None = None,
    progress_every_s: float = 1.0,
) -> ReplayResult:
    """Rebuild aside and swap in; one at a time (ReplayRunningError). Refuses to swap in tables
    built with rejected events (ReplayRefusedError): real events that did not apply (parked at
    the end for a version that never came, impossible versions, a schema version this code does
    not know yet, values the database refused). Messages that are not events at all
    (undecodable, against their schema) are skipped, as the live projection skips them."""
    with _only_replay():
        return _replay(from_snapshot=from_snapshot, batch_size=batch_size, progress=progress,
                       progress_every_s=progress_every_s)


def _replay(*, from_snapshot: bool, batch_size: int, progress, progress_every_s: float) -> ReplayResult:
    started = time.monotonic()
    snapshot = None
    if from_snapshot:
        snapshot = Snapshot.objects.order_by("-id").first()
        if snapshot is None:
            raise ReplayError("there is no snapshot yet; take one with `manage.py snapshot projections`")
    start = services.prepare_rebuild(snapshot_id=snapshot.pk if snapshot else None)
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
        # Events before the start that no snapshot holds are gone: say so.
        retention_start = {p: lows[p] for p in partitions if lows[p] > start.get((topic, p), 0)}
        if retention_start:
            logger.warning("replay: %s", _retention_warning(retention_start))
        consumer.assign([TopicPartition(topic, p, positions[p]) for p in partitions])
        counters = {"applied": 0, "rejected": 0, "done": 0, "skipped": [], "refused": []}
        last_report = 0.0

        def report(phase: str, total: int, force: bool = False) -> None:
            nonlocal last_report
            now = time.monotonic()
            if progress and (force or now - last_report >= progress_every_s):
                progress(ReplayProgress(counters["done"], total, now - started, phase))
                last_report = now

        targets = _ends(topic, partitions)
        total = _remaining(positions, targets)
        _consume_until(consumer, topic, positions, targets, batch_size, counters, lambda: report("rebuilding", total))

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [db.AdvisoryLock.PROJECTION])  # live applies wait
            targets = _ends(topic, partitions)
            total = counters["done"] + _remaining(positions, targets)
            _consume_until(consumer, topic, positions, targets, batch_size, counters, lambda: report("catching up", total))
            _refuse_if_incomplete(counters)
            services.swap_in_rebuild(cursor)
        report("swapped", counters["done"], force=True)
    finally:
        consumer.close()
    return ReplayResult(counters["applied"], counters["rejected"], snapshot.pk if snapshot else None,
                        time.monotonic() - started, skipped=counters["skipped"], retention_start=retention_start)


def _refuse_if_incomplete(counters: dict) -> None:
    refused, parked = counters["refused"], services.parked_count(tables=services.REBUILD)
    if not refused and not parked:
        return
    reasons = refused[:MAX_LISTED] + services.parked_summary(tables=services.REBUILD, limit=MAX_LISTED)
    raise ReplayRefusedError(
        f"the rebuild is not swapped in: {len(refused):,} events were rejected and {parked:,} wait for versions "
        f"that never came, so the rebuilt tables would lack them (the live tables are unchanged; the rebuild is "
        f"left in {services.REBUILD.todos} and its neighbours to look at). First: " + "; ".join(reasons))


def _watermarks(topic: str, partitions: list[int], spec: OffsetSpec) -> dict[int, int]:
    """Earliest or latest offsets of every partition in one admin request."""
    admin = kafka.admin_client()
    futures = admin.list_offsets({TopicPartition(topic, p): spec for p in partitions}, request_timeout=10)
    return {tp.partition: future.result().offset for tp, future in futures.items()}


def _ends(topic: str, partitions: list[int]) -> dict[int, int]:
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
            except UnknownVersionError as exc:  # a real event this code cannot read yet
                counters["refused"].append(f"{_where(message)} {exc}")
            except NonRetriableError as exc:
                counters["rejected"] += 1
                if len(counters["skipped"]) < MAX_LISTED:
                    counters["skipped"].append(f"{_where(message)} {exc}"[:300])
                logger.warning("replay skips %s: %s", _where(message), exc)
        rejected = apply_or_isolate(tables=services.REBUILD, items=items, live=False)
        counters["refused"] += [f"{item.topic}[{item.partition}]@{item.offset} {error}" for item, error in rejected]
        counters["applied"] += len(items) - len(rejected)
        pending = {p for p in pending if positions[p] < targets[p]}
        tick()
