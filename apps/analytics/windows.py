"""The analytics windows, as data — each a window over the facts of one user
(apps.analytics.facts), the topic its results go to, and the shape of its value — and
`UserWindows`, one user's open windows as the processor folds them.

- `hourly` and `daily` (tumbling): the activity of each hour and day — created and completed
  todos by team and priority, completion times, who acted, who assigned to whom.
- `rolling` (hopping, 24 h advancing every 6 hours): created and completed over the last day,
  for a completion rate that moves four times a day instead of jumping at midnight. (Advancing
  hourly, each creation or completion would land in 24 windows, each sent when it changes: six
  times the records, and `make bench` measured the processor 40% slower that way.)
- `sliding` (60 min): each event's window is the hour that ends with it, so its value is how
  many events the user made in the last 60 minutes at that moment.
"""
import bisect
from collections.abc import Callable
from dataclasses import dataclass

from apps.analytics import facts
from polystack.streaming import topics

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class WindowSpec:
    name: str  # the state store's name and analytics_window.window
    kind: str  # tumbling | hopping | sliding
    duration_ms: int
    topic: str
    shape: str  # what its value holds: facts.rows_of(shape, value)
    step_ms: int | None = None  # hopping only

    @property
    def fold(self) -> tuple[Callable[[], dict], Callable[[dict, dict], dict]]:
        return SHAPES[self.shape]

    def takes(self, fact: dict) -> bool:
        """Whether the fact changes this window's value (a rate counts creations and
        completions only): a window is neither updated nor sent for a fact it ignores."""
        return self.shape != "rate" or fact["k"] != facts.OTHER

    def ranges(self, timestamp_ms: int) -> list[tuple[int, int]]:
        """The (start, end) of every window an event at `timestamp_ms` falls in (a sliding
        window's is the hour ending with the event, both ends inclusive). Windows are aligned
        to the epoch, as Kafka Streams' and Quix Streams' are."""
        if self.kind == "sliding":
            return [(max(0, timestamp_ms - self.duration_ms), timestamp_ms)]
        # Windows start at multiples of the step (of the duration, tumbling), from the epoch.
        step = self.step_ms or self.duration_ms
        latest = timestamp_ms - timestamp_ms % step
        starts = range(latest, max(timestamp_ms - self.duration_ms, -1), -step)
        return [(start, start + self.duration_ms) for start in reversed(starts)]


SHAPES: dict[str, tuple[Callable[[], dict], Callable[[dict, dict], dict]]] = {
    "activity": (facts.new_activity, facts.add_activity),
    "rate": (facts.new_rate, facts.add_rate),
    "events": (facts.new_events, facts.add_events),
}

WINDOWS: tuple[WindowSpec, ...] = (
    WindowSpec("hourly", "tumbling", HOUR_MS, topics.ANALYTICS_HOURLY, "activity"),
    WindowSpec("daily", "tumbling", DAY_MS, topics.ANALYTICS_DAILY, "activity"),
    WindowSpec("rolling", "hopping", DAY_MS, topics.ANALYTICS_ROLLING, "rate", step_ms=6 * HOUR_MS),
    WindowSpec("sliding", "sliding", HOUR_MS, topics.ANALYTICS_ACTIVITY, "events"),
)
BY_NAME = {spec.name: spec for spec in WINDOWS}
BY_TOPIC = {spec.topic: spec for spec in WINDOWS}


@dataclass
class Late:
    """An event dropped from a window: it came after the window's end plus the grace period."""

    window: str
    start: int
    end: int
    late_by_ms: int


class UserWindows:
    """One user's open windows, folded fact by fact in event time, as the state store keeps
    them (`as_json` / `from_json`).

    Event time moves per user: `latest` is the latest event time seen. A window is closed once
    `latest` passes its end plus the grace period; a fact for a closed window is dropped from
    it and reported as `Late` (the daily window may still take an event the hourly one
    refused). Each window touched since `take_updates()` was last called is reported by it
    once with its current value — not once per event: a batch of events updates a window once.
    """

    def __init__(self, grace_ms: int, state: dict | None = None):
        self.grace_ms = grace_ms
        state = state or {}  # folded in place: the caller's own copy (PartitionStore.get gives one)
        self.latest: int = state.get("latest", -1)
        self.values: dict[str, dict[int, dict]] = {
            spec.name: {int(start): value for start, value in state.get(spec.name, {}).items()}
            for spec in WINDOWS if spec.kind != "sliding"}
        self.recent: list[tuple[int, str]] = [tuple(item) for item in state.get("sliding", [])]  # (ms, team)
        self._updated: set[tuple[str, int]] = set()

    def add(self, fact: dict, at: int) -> list[Late]:
        self.latest = latest = max(self.latest, at)
        closed_before = latest - self.grace_ms  # windows ending at or before this are closed
        late = []
        for spec in WINDOWS:
            if spec.kind == "sliding":
                late += self._add_sliding(spec, fact, at, closed_before)
                continue
            if not spec.takes(fact):
                continue
            new, add = spec.fold
            values = self.values[spec.name]
            for start, end in spec.ranges(at):
                if end <= closed_before:
                    late.append(Late(spec.name, start, end, closed_before - at))
                    continue
                values[start] = add(values.get(start) or new(), fact)
                self._updated.add((spec.name, start))
        return late

    def _add_sliding(self, spec: WindowSpec, fact: dict, at: int, closed_before: int) -> list[Late]:
        # A sliding window is the span [t - duration, t] that ends with an event at t, both ends
        # included; it is closed once t is before `closed_before` (grace passed since its end).
        if at < closed_before:
            return [Late(spec.name, max(0, at - spec.duration_ms), at, closed_before - at)]
        late = []
        bisect.insort(self.recent, (at, fact["t"]))
        self._updated.add((spec.name, at))
        # The windows of later events that this one falls in (only when it came out of order).
        for later, _ in self.recent[bisect.bisect_right(self.recent, (at, "\uffff")):
                                    bisect.bisect_right(self.recent, (at + spec.duration_ms, "\uffff"))]:
            if later < closed_before and (spec.name, later) not in self._updated:
                late.append(Late(spec.name, later - spec.duration_ms, later, closed_before - at))
            else:  # open, or closed in this batch after an update: it is sent with this event in it
                self._updated.add((spec.name, later))
        return late

    def take_updates(self) -> list[tuple[WindowSpec, int, int, dict]]:
        """(window, start, end, current value) of each window updated since the last call."""
        updates = []
        for name, start in sorted(self._updated):
            spec = BY_NAME[name]
            if spec.kind == "sliding":
                end, start = start, max(0, start - spec.duration_ms)
                new, add = spec.fold
                value = new()
                for _, team in self.recent[bisect.bisect_left(self.recent, (start, "")):
                                           bisect.bisect_right(self.recent, (end, "\uffff"))]:
                    value = add(value, {"t": team})
                updates.append((spec, start, end, value))
            else:
                updates.append((spec, start, start + spec.duration_ms, self.values[name][start]))
        self._updated.clear()
        return updates

    def expire(self) -> None:
        """Forget closed windows, and events no open sliding window can hold."""
        closed_before = self.latest - self.grace_ms
        for spec in WINDOWS:
            if spec.kind == "sliding":
                keep_from = closed_before - 2 * spec.duration_ms
                self.recent = self.recent[bisect.bisect_left(self.recent, (keep_from, "")):]
            else:
                values = self.values[spec.name]
                for start in [start for start in values if start + spec.duration_ms <= closed_before]:
                    del values[start]

    def as_json(self) -> dict:
        state: dict = {"latest": self.latest, "sliding": [list(item) for item in self.recent]}
        for name, values in self.values.items():
            state[name] = {str(start): value for start, value in values.items()}
        return state
