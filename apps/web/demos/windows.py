"""Stream analytics: events fed with chosen times open, update and close a tumbling, a hopping and
a sliding window; a late event inside the grace period still counts, one beyond it is recorded
as late instead."""
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer
from django.conf import settings
from django.db import connection

from apps.analytics.facts import M_CREATED, M_EVENTS
from apps.analytics.models import LateEvent
from apps.todos import events
from apps.web.demos.base import DemoError, Show, demo_user, wait_for
from polystack.streaming import kafka
from polystack.streaming.topics import TODO_EVENTS, resolve

TITLE = "stream analytics: tumbling, hopping and sliding windows over event time, and late events"
WATCH = ("each window's value as the stream processor sends it (read from analytics_window), and what the "
         "grace period does with events that come late")
MINUTE = timedelta(minutes=1)

# (time after the hour H, what it shows); every event is a new todo of the demo's user.
FEED = (
    (10 * MINUTE, "opens the hour H, its day, the four 24-hour hopping windows (6 h apart) that hold it, "
         "and a 60-minute sliding window ending at it"),
    (40 * MINUTE, "updates them: H now holds two"),
    (timedelta(minutes=59, seconds=59, milliseconds=999), "the last instant of H (59:59.999): still H"),
    (60 * MINUTE, "opens H+1, at 11:00 exactly. H stays open: event time has not passed its end plus the grace"),
    (30 * MINUTE, "comes late (event time is already 11:00) but inside the grace: H still takes it. Its "
                  "sliding window, the hour ending at 10:30, is closed already: late for that one"),
    (75 * MINUTE, "moves event time past H's end plus the grace: H is closed"),
    (20 * MINUTE, "comes too late for H: it is dropped from H and recorded as a late event. The day and the "
         "hopping windows, still open, take it"),
)


def run(show: Show, options) -> None:
    # Event time moves per user and never back: a user of this run's own, or a second run's events
    # would all be late for the first run's windows.
    user, _ = demo_user(f"demo-windows-{int(time.time())}")
    hour = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=1)
    grace = timedelta(milliseconds=settings.ANALYTICS_GRACE_MS)
    topic = resolve(TODO_EVENTS)
    producer = Producer(kafka.producer_config())
    try:
        show.step(f"The events: todos created by {user.username} (id {user.pk}), written straight to {topic} "
                  f"with the times we choose, yesterday from 10:00 (H is 10:00–11:00 UTC).")
        show.say(f"The grace period is {grace.total_seconds():.0f} s: a window takes events until event time "
                 "(the latest occurredAt seen for the user) passes its end by that much.")
        show.watch("the hourly window (tumbling), the day (tumbling), the hopping windows and the sliding one.")
        for n, (after, meaning) in enumerate(FEED, 1):
            at = hour + after
            show.step(f"Event {n} at {at:%H:%M:%S}.{at.microsecond // 1000:03d}: it {meaning}.")
            before = _windows(user.pk)
            offset = _produce(producer, topic, user.pk, at)
            wait_for(lambda: _arrived(user.pk, at, before), timeout=options.timeout_s,
                     what=f"the stream processor and its sink to show event {n}")
            _print(show, user.pk, at)
            for row in LateEvent.objects.filter(owner_id=user.pk, occurred_at=at).order_by("window_name"):
                show.fact(f"event {n} late for the {row.window_name} window "
                          f"{row.window_start:%H:%M}–{row.window_end:%H:%M}",
                          f"by {row.late_by_ms / 60_000:.1f} min (offset {offset})")
        show.step("Where it ended:")
        windows = _windows(user.pk)
        show.fact("hour H (10:00–11:00) created", windows.get(("hourly", hour), 0))
        show.fact("hour H+1 (11:00–12:00) created", windows.get(("hourly", hour + 60 * MINUTE), 0))
        show.fact("the day created", windows.get(("daily", hour.replace(hour=0)), 0))
        show.fact("late events recorded", LateEvent.objects.filter(owner_id=user.pk).count())
        show.say("The same numbers are in the API and on the dashboard (/analytics/, scope: all, as staff).")
    finally:
        producer.flush(10)
        show.step("Clean up: the demo's user is deactivated. Its events stay in the log, and their windows "
                  "with them: analytics is history.")
        user.is_active = False
        user.save(update_fields=["is_active"])


def _produce(producer: Producer, topic: str, user_id: int, at: datetime) -> int:
    todo = uuid.uuid4()
    stamp = events.iso(at)
    envelope = events.new_envelope(
        event_type=events.TODO_CREATED, aggregate_id=todo, aggregate_version=1, user_id=str(user_id),
        data={"todoId": str(todo), "title": f"windows demo {stamp}", "description": "", "userId": str(user_id),
              "createdAt": stamp, "priority": "high", "dueDate": None, "teamId": None},
        correlation_id=f"demo-windows-{todo.hex[:8]}", occurred_at=at,
        metadata={"notificationRequired": False, "affectedUsers": [str(user_id)], "category": "created",
                  "actorId": str(user_id)})
    delivered = []
    kafka.produce(producer, topic, key=str(user_id).encode(), value=json.dumps(envelope).encode(),
                  headers=[("eventType", envelope["eventType"].encode()), ("eventId", envelope["eventId"].encode()),
                           ("schemaVersion", str(envelope["schemaVersion"]).encode()),
                           ("correlationId", envelope["correlationId"].encode())],
                  on_delivery=lambda error, message: delivered.append((error, message)))
    producer.flush(30)
    if not delivered or delivered[0][0] is not None:
        raise DemoError(f"could not write the event to {topic}: {delivered[0][0] if delivered else 'no answer'}")
    return delivered[0][1].offset()


def _windows(user_id: int) -> dict[tuple[str, datetime], int]:
    """(window, start) -> created todos (events, for the sliding window), as the sink stored them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT window_name, window_start, sum(value) FROM analytics_window "
            "WHERE owner_id = %s AND metric = CASE WHEN window_name = 'sliding' THEN %s ELSE %s END "
            "GROUP BY window_name, window_start", [user_id, M_EVENTS, M_CREATED])
        return {(name, start): int(value) for name, start, value in cursor.fetchall()}


def _arrived(user_id: int, at: datetime, before: dict) -> bool:
    """Whether the event shows: every window that holds it changed, or was recorded as late for it."""
    dropped = set(LateEvent.objects.filter(owner_id=user_id, occurred_at=at).values_list("window_name", flat=True))
    changed = {name for (name, start), value in _windows(user_id).items() if value != before.get((name, start))}
    return {"hourly", "daily", "rolling", "sliding"} <= changed | dropped


def _print(show: Show, user_id: int, at: datetime) -> None:
    for (name, start), value in sorted(_windows(user_id).items(), key=lambda item: (_ORDER[item[0][0]], item[0][1])):
        if name == "sliding":
            if start + 60 * MINUTE == at:
                show.say(f"sliding  60 min to {at:%H:%M:%S}          {value} events in it")
            continue
        length = {"hourly": 60 * MINUTE, "daily": 24 * 60 * MINUTE, "rolling": 24 * 60 * MINUTE}[name]
        if start <= at < start + length:
            show.say(f"{name:8} {start:%d %H:%M}–{start + length:%d %H:%M}   created {value}")


_ORDER = {"hourly": 0, "daily": 1, "rolling": 2, "sliding": 3}
