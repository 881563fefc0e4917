"""`analytics verify`: every windowed metric recomputed in batch, straight from todo-events, and
compared with what the stream wrote (analytics_window).

Stream processing and batch processing of the same events must agree. The batch reads each
partition from its first offset to the end it had when verify started, keeps each todo's
state in a dict where the stream keeps it in a state store, and puts each fact in every window
its time falls in — plain arithmetic where the stream keeps open windows per user and batch.
It shares with the stream only the definition of a fact and of a window's value
(apps.analytics.facts) and of which windows an instant falls in: what is checked is the
streaming machinery — state stores, lateness, exactly-once delivery, the sink.

The stream drops an event from a window it reaches after the grace period, and records each
such drop (LateEvent); the batch leaves the same (event, window) pairs out, so a difference
left over is a real one.
"""
import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection

from apps.analytics import facts, partitions, services
from apps.analytics.models import LateEvent
from apps.analytics.processor import decode
from apps.analytics.windows import WINDOWS
from polystack.gcpolicy import collector_paused
from polystack.streaming import kafka, topics
from polystack.streaming.registry import NonRetriableError
from polystack.streaming.topics import resolve

RowKey = tuple[str, str, int, datetime, str | None, str]  # window, metric, owner, start, team, dim


@dataclass
class Report:
    events: int = 0
    skipped: int = 0  # what the stream sends to the DLQ
    late_drops: int = 0
    expected: dict[RowKey, int] = field(default_factory=dict)
    actual: dict[RowKey, int] = field(default_factory=dict)

    @property
    def differences(self) -> list[tuple[RowKey, int | None, int | None]]:
        expected, actual = self.expected, self.actual
        keys = [key for key in expected.keys() | actual.keys() if expected.get(key) != actual.get(key)]
        return [(key, expected.get(key), actual.get(key)) for key in sorted(keys, key=repr)]


def read_events(*, progress: Callable[[int], None] | None = None) -> Iterator[tuple[str, int, int, bytes, bytes, int]]:
    """(topic, partition, offset, key, value, timestamp) of every todo event there is now, each
    partition in offset order."""
    for message in kafka.read_to_end(resolve(topics.TODO_EVENTS), group_id="analytics-verify", progress=progress):
        yield (message.topic(), message.partition(), message.offset(), message.key(), message.value(),
               message.timestamp()[1])


def recompute(messages: Iterable[tuple[str, int, int, bytes, bytes, int]], *, late: set[tuple]) -> Report:
    """The window rows the stream should have written for these messages. `late` holds the
    (window, topic, partition, offset, window start ms) the stream recorded as dropped."""
    report = Report()
    todos: dict[tuple[str, str], dict] = {}  # (owner, todo id) -> state, the stream's "facts" store
    per_user: dict[str, list[tuple[int, tuple, dict]]] = defaultdict(list)  # owner -> (ms, where, fact)
    for topic, partition, offset, key, value, timestamp in messages:
        report.events += 1
        try:
            envelope, at = decode(value, key, timestamp)
        except NonRetriableError:
            report.skipped += 1
            continue
        owner, state_key = envelope["userId"], (envelope["userId"], envelope["aggregateId"])
        fact, todo = facts.fact_of(envelope, todos.get(state_key), at)
        if todo is None:
            todos.pop(state_key, None)
        else:
            todos[state_key] = todo
        per_user[owner].append((at, (topic, partition, offset), fact))

    values: dict[tuple[str, str, int, int], dict] = {}  # (window, owner, start, end) -> value
    for owner, timeline in per_user.items():
        timeline.sort(key=lambda item: item[0])  # by event time (stable: offset order within a ms)
        times = [at for at, _, _ in timeline]
        for spec in WINDOWS:
            new, add = spec.fold
            if spec.kind == "sliding":
                dropped = {where for at, where, _ in timeline
                           if (spec.name, *where, max(0, at - spec.duration_ms)) in late}
                for at, where, _ in timeline:
                    if where in dropped:
                        continue
                    start = max(0, at - spec.duration_ms)
                    value = new()
                    for _, other, fact in timeline[bisect.bisect_left(times, start):bisect.bisect_right(times, at)]:
                        if other not in dropped and (spec.name, *other, start) not in late:
                            value = add(value, fact)
                    values[(spec.name, owner, start, at)] = value
                continue
            for at, where, fact in timeline:
                for start, end in spec.ranges(at):
                    if (spec.name, *where, start) in late:
                        continue
                    window = (spec.name, owner, start, end)
                    values[window] = add(values.get(window) or new(), fact)

    shapes = {spec.name: spec.shape for spec in WINDOWS}
    for (window_name, owner, start, end), value in values.items():
        owner_id, window_start = int(owner), services.from_ms(start)
        for team, metric, dim, number in facts.rows_of(shapes[window_name], value):
            report.expected[(window_name, metric, owner_id, window_start, team or None, dim)] = number
    return report


def stored(*, start: datetime | None, end: datetime | None) -> dict[RowKey, int]:
    where, params = [], []
    if start is not None:
        where.append("window_start >= %s")
        params.append(start)
    if end is not None:
        where.append("window_start < %s")
        params.append(end)
    with connection.cursor() as cursor:
        cursor.execute("SELECT window_name, metric, owner_id, window_start, team_id, dim, value FROM analytics_window"
                       + (" WHERE " + " AND ".join(where) if where else ""), params)
        return {(w, m, o, s, str(t) if t else None, d): v for w, m, o, s, t, d, v in cursor.fetchall()}


def verify(*, start: datetime | None = None, end: datetime | None = None,
           progress: Callable[[int], None] | None = None) -> Report:
    """Batch against stream over windows starting in [start, end) (all when None). Windows older
    than the retention period are gone from the stream's tables, so they are left out too."""
    late = set(LateEvent.objects.values_list("window_name", "topic", "partition", "offset", "window_start"))
    late = {(w, t, p, o, (s - facts.EPOCH) // timedelta(milliseconds=1)) for w, t, p, o, s in late}
    with collector_paused():  # it holds every todo's state and window value at once
        report = recompute(read_events(progress=progress), late=late)
    report.late_drops = len(late)
    cutoff = partitions.retention_cutoff()
    low = max(start, cutoff) if start else cutoff
    report.expected = {key: value for key, value in report.expected.items()
                       if key[3] >= low and (end is None or key[3] < end)}
    report.actual = stored(start=low, end=end)
    return report
