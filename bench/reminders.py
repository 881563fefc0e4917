"""Reminders: the scheduler (`runscheduler`) and the relay (`runrelay`), as processes of their own.

- Burst: 100,000 reminders come due in the same second. Measured: from that second until every
  ReminderDue is on reminder-events (acknowledged by Kafka), as events/s, against a bare
  idempotent producer sending the same 100,000 payloads (the fastest raw way to put them there).
- Steady: 1,000 reminders a minute (one every 60 ms), each armed by a NOTIFY-ing insert half a
  second before its time, as the reminders consumer does. Measured: each one's lateness, from
  its reminder time to Kafka's append of its ReminderDue (the topic stamps LogAppendTime).
  Target: p99 < 1 s.
"""
import json
import threading
import time
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, Producer, TopicPartition
from django.contrib.auth import get_user_model
from django.db import connection

from apps.reminders.models import Reminder
from apps.reminders.services import ARMED_CHANNEL
from apps.todos import events, reminder_events
from apps.todos.models import OutboxEvent, TodoState
from bench.common import log_append_time, percentile_ms, report, start_role, stop_roles
from polystack.streaming import kafka
from polystack.streaming.topics import REMINDER_EVENTS, resolve

BURST = 100_000
USERS = 1000
STEADY_SECONDS = 60
STEADY_EVERY_S = 0.06  # 1,000 a minute


def _todos(count: int) -> list[TodoState]:
    """Todos with a due date and a schedule (version 2), spread over USERS owners."""
    users = get_user_model().objects
    owners = [users.get_or_create(username=f"bench-reminder-{n}")[0] for n in range(USERS)]
    now = datetime.now(UTC)
    states = [TodoState(owner=owners[n % USERS], version=2, title=f"todo {n}", created_at=now,
                        due_date=now + timedelta(days=1), schedule_version=2) for n in range(count)]
    for start in range(0, count, 10_000):
        TodoState.objects.bulk_create(states[start:start + 10_000])
    return states


def _arm(states: list[TodoState], times: list[datetime]) -> None:
    rows = [Reminder(todo_id=s.id, owner_id=s.owner_id, reminder_type="PT1H", due_date=s.due_date, remind_at=at,
                     scheduled_by=2, correlation_id="bench") for s, at in zip(states, times, strict=True)]
    for start in range(0, len(rows), 10_000):
        Reminder.objects.bulk_create(rows[start:start + 10_000])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", [ARMED_CHANNEL])


def _on_kafka(consumer: Consumer, topic: str) -> int:
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
               for p in partitions)


def bare(count: int) -> float:
    """The same number of ReminderDue payloads, straight to the topic."""
    now = datetime.now(UTC)
    payloads = [(str(n % USERS + 1).encode(), json.dumps(reminder_events.new_envelope(
        event_type=reminder_events.REMINDER_DUE, todo_id="0b7c6a52-2d8e-4f7e-9b1a-3f5e8e9c1d2a", user_id=n % USERS + 1,
        data={"reminderType": "PT1H", "dueDate": events.iso(now), "remindAt": events.iso(now), "late": False},
        correlation_id="bench", occurred_at=now)).encode()) for n in range(count)]
    producer = Producer(kafka.producer_config(**{"message.timeout.ms": 0}))
    started = time.perf_counter()
    for key, value in payloads:
        kafka.produce(producer, resolve(REMINDER_EVENTS), key=key, value=value,
                      headers=[("eventType", b"ReminderDue"), ("schemaVersion", b"1"), ("correlationId", b"bench")])
    assert producer.flush(120) == 0
    return count / (time.perf_counter() - started)


def burst(consumer: Consumer) -> float:
    topic = resolve(REMINDER_EVENTS)
    before = _on_kafka(consumer, topic)
    states = _todos(BURST)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    _arm(states, [due + timedelta(microseconds=n * 9) for n in range(BURST)])  # all within one second
    while datetime.now(UTC) < due:
        time.sleep(0.001)
    started = time.perf_counter()
    deadline = started + 600
    while _on_kafka(consumer, topic) < before + BURST:
        assert time.perf_counter() < deadline, "the burst did not reach Kafka in 10 minutes"
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert Reminder.objects.filter(state=Reminder.FIRED).count() >= BURST
    print(f"  {BURST:,} reminders due in one second: all ReminderDue on Kafka {elapsed:.1f} s later", flush=True)
    return BURST / elapsed


def steady(consumer: Consumer) -> list[float]:
    """Lateness (s) of each reminder of the steady run, sorted."""
    topic = resolve(REMINDER_EVENTS)
    count = int(STEADY_SECONDS / STEADY_EVERY_S)
    states = _todos(count)
    first = datetime.now(UTC) + timedelta(seconds=2)
    times = [first + timedelta(seconds=n * STEADY_EVERY_S) for n in range(count)]
    since = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
             for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions}

    def feed():  # each reminder armed half a second before its time, waking the scheduler
        from django.db import connection as own

        try:
            for state, at in zip(states, times, strict=True):
                while datetime.now(UTC) < at - timedelta(seconds=0.5):
                    time.sleep(0.005)
                _arm([state], [at])
        finally:
            own.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    feeder.join()
    remind_at = {str(state.id): at.timestamp() for state, at in zip(states, times, strict=True)}
    consumer.assign([TopicPartition(topic, p, o) for p, o in since.items()])
    lateness = {}
    deadline = time.monotonic() + 120
    while len(lateness) < count and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            if message.error() is None:
                todo_id = json.loads(message.value())["data"]["todoId"]
                if todo_id in remind_at:
                    lateness[todo_id] = message.timestamp()[1] / 1000 - remind_at[todo_id]
    consumer.unassign()
    assert len(lateness) == count, f"{count - len(lateness)} reminders never reached Kafka"
    return sorted(lateness.values())


def run() -> None:
    log_append_time(resolve(REMINDER_EVENTS))
    theirs = bare(BURST)
    connection.close()
    roles = [start_role("bench-reminders-relay", "manage.py", "runrelay"),
             start_role("bench-reminders-scheduler", "manage.py", "runscheduler")]
    consumer = Consumer(kafka.base_config(**{"group.id": "bench-reminders-reader", "enable.auto.commit": False}))
    try:
        ours = burst(consumer)
        Reminder.objects.all().delete()
        OutboxEvent.objects.all().delete()
        lateness = steady(consumer)
    finally:
        consumer.close()
        stop_roles(roles)
    report("bare idempotent producer, same payloads", theirs, "events/s")
    report("due table -> scheduler -> outbox -> relay -> Kafka", ours, "events/s")
    print(f"  {'ratio scheduler / bare (no target: the price of once)':<52} {ours / theirs:>12.2f}", flush=True)
    print(f"  steady, {len(lateness):,} reminders at 1,000 a minute, reminder time -> Kafka append: "
          f"p50 {percentile_ms(lateness, 0.5):.0f} ms, p99 {percentile_ms(lateness, 0.99):.0f} ms, "
          f"max {lateness[-1] * 1000:.0f} ms (target p99 < 1000 ms: "
          f"{'meets' if percentile_ms(lateness, 0.99) < 1000 else 'MISSES'})", flush=True)
