"""The analytics stream processor: todo-events → facts → four windows → analytics-*, exactly once.

    todo-events ──decode──▶ event ──fact (state: one entry per todo)──▶ fact
        fact ──tumbling 1 h──▶ analytics-hourly        fact ──hopping 24 h / 6 h──▶ analytics-rolling-24h
        fact ──tumbling 1 d──▶ analytics-daily         fact ──sliding 60 min──────▶ analytics-activity-60m
        an event later than a window's grace ─────────▶ analytics-late-events

It runs as a transactional consumer (polystack.streaming.transactional): per batch, the
window results, the late events, the dead letters, the state store's changes and the offsets
commit in one Kafka transaction. Its state store holds each todo's facts (when it was
created, its priority and team: what a completion is joined with) and each user's open
windows; it is restored from its changelog topic after a crash or on another machine.

Everything is keyed by the message key, the owner's userId: a user's events sit in one
partition in order, so a user's windows never see their events reordered, and event time
(the events' occurredAt) advances per user. Totals over users and teams are sums of these
per-user windows, in SQL (apps.analytics.selectors).

Each window's current value is sent whenever it changed in a batch — not only when it closes
— so the open windows are queryable (the sink materialises them within a second), and a
user's last window never waits for their next event to be reported.
"""
from collections import defaultdict

import orjson

from django.conf import settings

from apps.analytics import facts
from apps.analytics.windows import UserWindows
from apps.todos import events
from polystack.streaming import topics
from polystack.streaming.registry import Message, NonRetriableError
from polystack.streaming.transactional import Batch


class UnwindowableEventError(NonRetriableError):
    """A valid todo event the windows cannot place: its key is not its owner, or its time is
    before 1970 or far after the broker received it."""


def decode(value: bytes | None, key: bytes | None, timestamp: int | None) -> tuple[dict, int]:
    """A message as a current-version event (events.read), checked for what windowing needs,
    with its event time (occurredAt in epoch ms)."""
    if value is None:
        raise NonRetriableError("message has no value")
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:  # invalid UTF-8 too
        raise NonRetriableError(f"undecodable JSON: {exc}") from None
    envelope = events.read(payload)
    if key is None or key.decode("utf-8", "replace") != envelope["userId"]:
        raise UnwindowableEventError("the message key is not the event's userId")
    at = facts.epoch_ms(envelope["occurredAt"])
    if at < 0:
        raise UnwindowableEventError("occurredAt is before 1970")
    if timestamp and at > timestamp + settings.ANALYTICS_MAX_CLOCK_SKEW_MS:
        # One event from the far future would make every later event of its user late.
        raise UnwindowableEventError("occurredAt is later than the broker's timestamp allows")
    return envelope, at


def window_key(owner: str, start: int, end: int) -> str:
    return f"{owner}:{start}:{end}"


_json = orjson.dumps  # several records per event: orjson is ~5x faster than json here

class WindowProcessor:
    """Folds todo-events into hourly, daily, rolling and sliding windows per user, exactly once."""

    def __init__(self):
        self.grace_ms = settings.ANALYTICS_GRACE_MS

    def process(self, batch: Batch) -> None:
        by_user: dict[tuple[int, str], list[tuple[Message, dict, int]]] = defaultdict(list)
        for message in batch.messages:
            try:
                envelope, at = decode(message.value, message.key, message.timestamp_ms)
            except NonRetriableError as exc:
                batch.reject(message, exc)
                continue
            by_user[(message.partition, envelope["userId"])].append((message, envelope, at))
        for (partition, owner), items in by_user.items():
            self._fold_user(batch, batch.stores[partition], owner, items)

    def _fold_user(self, batch: Batch, store, owner: str, items: list[tuple[Message, dict, int]]) -> None:
        windows = UserWindows(self.grace_ms, store.get(f"w:{owner}"))
        for message, envelope, at in items:
            todo_key = f"t:{owner}:{envelope['aggregateId']}"
            before = store.get(todo_key)
            fact, todo = facts.fact_of(envelope, before, at)
            if todo is not before:  # most events change nothing the facts keep: no changelog record
                if todo is None:
                    store.delete(todo_key)
                else:
                    store.set(todo_key, todo)
            for late in windows.add(fact, at):
                batch.send(topics.ANALYTICS_LATE_EVENTS,
                           key=f"{late.window}:{message.partition}:{message.offset}:{late.start}",
                           value=_json({"window": late.window, "topic": message.topic, "partition": message.partition,
                                        "offset": message.offset, "userId": owner, "occurredMs": at,
                                        "lateByMs": late.late_by_ms, "start": late.start, "end": late.end}))
        for spec, start, end, value in windows.take_updates():
            batch.send(spec.topic, key=window_key(owner, start, end),
                       value=_json({"userId": owner, "start": start, "end": end, "value": value}))
        windows.expire()
        store.set(f"w:{owner}", windows.as_json())
