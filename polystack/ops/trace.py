"""Follow one correlationId through the system — eventual consistency made visible: the events
its command wrote (topic, partition, offset), whether each consumer group has read them yet
(its committed offset, from Kafka), and what the groups that keep tables did with them
(projected, notifications sent, device records written, reminders armed).

Apps declare what they can tell in their `traces.py`: `@event_finder` returns the events of a
correlationId, `@tracer("group id")` the steps a group's tables show for those events. The
realtime and analytics groups keep no per-event rows: for them the committed offset is the
whole story (read, or not yet).
"""
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils.module_loading import autodiscover_modules

from polystack.ops import kafka_view
from polystack.streaming.registry import get_consumers
from polystack.streaming.topics import resolve

FINDERS: list[Callable] = []
TRACERS: dict[str, Callable] = {}  # consumer name -> tracer


@dataclass(frozen=True)
class TracedEvent:
    event_id: str
    event_type: str
    todo_id: str
    version: int
    topic: str
    partition: int
    offset: int
    occurred_at: datetime


@dataclass(frozen=True)
class Step:
    event_id: str
    what: str
    at: datetime | None = None


@dataclass
class GroupProgress:
    consumer: str
    group_id: str
    reads: list[tuple[TracedEvent, bool]] = field(default_factory=list)  # each event, and whether committed past it
    steps: list[Step] = field(default_factory=list)


@dataclass
class Trace:
    correlation_id: str
    events: list[TracedEvent]
    groups: list[GroupProgress]


def event_finder(func):
    """Register a function (correlation id -> [TracedEvent]) that finds a command's events."""
    if func not in FINDERS:
        FINDERS.append(func)
    return func


def tracer(consumer: str):
    """Register what consumer `consumer`'s tables say of events: (events) -> [Step]."""

    def register(func):
        TRACERS[consumer] = func
        return func

    return register


@functools.cache
def _discover() -> None:
    autodiscover_modules("traces")  # once a process: the apps' tracers register on import


def follow(correlation_id: str, *, admin) -> Trace:
    """The trace of one correlationId; raises KafkaException when Kafka does not answer."""
    _discover()
    events = sorted({e for find in FINDERS for e in find(correlation_id)}, key=lambda e: (e.occurred_at, e.version))
    if not events:
        return Trace(correlation_id, [], [])
    topics = {e.topic for e in events}
    readers = {name: d for name, d in get_consumers().items() if {resolve(t) for t in d.topics} & topics}
    views = {g.group_id: g for g in kafka_view.groups(
        admin, {d.group_id: sorted({resolve(t) for t in d.topics} & topics) for d in readers.values()})}
    groups = []
    for name, definition in sorted(readers.items()):
        committed = {(p.topic, p.partition): p.committed for p in views[definition.group_id].partitions}
        reads = []
        for e in events:
            next_offset = committed.get((e.topic, e.partition))  # the next the group reads; None: never committed
            reads.append((e, next_offset is not None and next_offset > e.offset))
        steps = TRACERS[name](events) if name in TRACERS else []
        groups.append(GroupProgress(consumer=name, group_id=definition.group_id, reads=reads, steps=steps))
    return Trace(correlation_id, events, groups)
