"""Relay: events from the outbox to Kafka (read rows, produce, wait for acks, delete them),
in two cases, each against the fastest raw way of doing the same work.

- Drain (the best case): the outbox is filled while nothing else writes, then the relay drains
  it; against a bare confluent-kafka producer sending the same payloads with the same settings.
- Concurrent (the realistic case): WRITERS processes commit one event per transaction as fast
  as they can while the relay (`runrelay`, a process of its own, woken by NOTIFY) publishes;
  rows then become visible out of id order and the relay's late-row check runs. Against the
  same writers producing each event straight to Kafka after their commit (no outbox, no
  relay). Measured: events/s from the first commit until the last event is in Kafka, and each
  event's delay from its commit to Kafka's append (the topic stamps LogAppendTime).
"""
import json
import multiprocessing
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from apps.todos import services
from apps.todos.models import OutboxEvent, TodoState
from apps.todos.relay import Relay
from bench import relay_writers
from bench.common import (fast_envelopes, log_append_time, median, percentile_ms, report, report_paired_ratio,
                          start_role, stop_roles)
from polystack.streaming import kafka
from polystack.streaming.topics import TODO_EVENTS, resolve

EVENTS = 50_000
ROUNDS = 5
WRITERS = 16
EVENTS_PER_WRITER = 1000
CONCURRENT_ROUNDS = 3


def fill_outbox(envelopes: list[dict]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {OutboxEvent._meta.db_table}")
        services.outbox_append(cursor, envelopes)


def bare(envelopes: list[dict]) -> float:
    topic = resolve(TODO_EVENTS)
    payloads = [(e["userId"].encode(), json.dumps(e).encode(), [
        ("eventType", e["eventType"].encode()), ("schemaVersion", str(e["schemaVersion"]).encode()),
        ("correlationId", e["correlationId"].encode())]) for e in envelopes]
    producer = Producer(kafka.producer_config(**{"message.timeout.ms": 0}))
    started = time.perf_counter()
    for key, value, headers in payloads:
        kafka.produce(producer, topic, key=key, value=value, headers=headers)
    assert producer.flush(60) == 0
    return len(payloads) / (time.perf_counter() - started)


def relay(envelopes: list[dict]) -> float:
    fill_outbox(envelopes)
    relay = Relay()
    started = time.perf_counter()
    published = relay.publish_pending()
    elapsed = time.perf_counter() - started
    assert published == len(envelopes), published
    return published / elapsed


def _end_offsets(consumer: Consumer, topic: str, partitions) -> dict[int, int]:
    """The next offset Kafka will write, per partition."""
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in partitions}


def _appended_at(consumer: Consumer, topic: str, since: dict[int, int], event_ids: set[str]) -> dict[str, float]:
    """Kafka's append time (s) of each event, read back from the topic after `since`."""
    consumer.assign([TopicPartition(topic, p, o) for p, o in since.items()])
    found: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while len(found) < len(event_ids) and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=5000, timeout=0.5):
            if message.error() is None:
                event_id = json.loads(message.value())["eventId"]
                if event_id in event_ids:
                    found[event_id] = message.timestamp()[1] / 1000
    consumer.unassign()
    return found


def concurrent(batches: list[list[dict]], todo_ids: list[str], *, through_outbox: bool,
               consumer: Consumer) -> tuple[float, list[float]]:
    """One round of the concurrent case: (events/s, sorted commit -> append delays in s)."""
    topic = resolve(TODO_EVENTS)
    partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    since = _end_offsets(consumer, topic, partitions)
    target = sum(since.values()) + sum(map(len, batches))
    context = multiprocessing.get_context("spawn")
    results, start = context.Queue(), context.Barrier(len(batches) + 1)
    writers = [context.Process(target=relay_writers.write, args=(events, todo_id, through_outbox, start, results))
               for events, todo_id in zip(batches, todo_ids, strict=True)]
    for writer in writers:
        writer.start()
    start.wait(timeout=120)
    started = time.time()
    while sum(_end_offsets(consumer, topic, partitions).values()) < target:
        time.sleep(0.01)
    elapsed = time.time() - started
    committed = dict(pair for _ in writers for pair in results.get(timeout=120))
    for writer in writers:
        writer.join(30)
    appended = _appended_at(consumer, topic, since, set(committed))
    return len(committed) / elapsed, sorted(appended[e] - committed[e] for e in appended)


def _writers_setup() -> tuple[list[list[dict]], list[str]]:
    """One todo state row per writer (writers of different todos do not wait for each other's
    locks), and each writer's events."""
    owner, _ = get_user_model().objects.get_or_create(username="bench-relay-writer")
    todos = TodoState.objects.bulk_create([TodoState(owner=owner, version=0, title="w", created_at=timezone.now())
                                           for _ in range(WRITERS)])
    events = fast_envelopes(WRITERS * EVENTS_PER_WRITER, todos=WRITERS * 50, user_id=owner.pk, seed=11)
    return [events[n::WRITERS] for n in range(WRITERS)], [str(t.id) for t in todos]


def run() -> None:
    envelopes = fast_envelopes(EVENTS, todos=5000)
    ours, theirs = [], []
    for _ in range(ROUNDS):
        theirs.append(bare(envelopes))
        ours.append(relay(envelopes))
    print("  drain: the outbox filled beforehand, nothing else writing (the best case)", flush=True)
    report("bare idempotent producer, same payloads (median)", median(theirs), "events/s")
    report("relay: outbox rows -> Kafka -> deleted (median)", median(ours), "events/s")
    report_paired_ratio("ratio relay / bare", ours, theirs, 0.5)

    log_append_time(resolve(TODO_EVENTS))
    batches, todo_ids = _writers_setup()
    connection.close()
    relay_role = start_role("bench-relay", "manage.py", "runrelay")
    consumer = Consumer(kafka.base_config(**{"group.id": "bench-relay-reader", "enable.auto.commit": False}))
    try:
        ours, theirs, our_delays, their_delays = [], [], [], []
        for _ in range(CONCURRENT_ROUNDS):
            rate, delays = concurrent(batches, todo_ids, through_outbox=False, consumer=consumer)
            theirs.append(rate)
            their_delays += delays
            rate, delays = concurrent(batches, todo_ids, through_outbox=True, consumer=consumer)
            ours.append(rate)
            our_delays += delays
    finally:
        consumer.close()
        stop_roles([relay_role])
    print(f"  concurrent: {WRITERS} writer processes commit {WRITERS * EVENTS_PER_WRITER:,} events, one per "
          "transaction, while they go to Kafka (the realistic case)", flush=True)
    report("produce after commit, no outbox (median)", median(theirs), "events/s")
    report("outbox, then runrelay (median)", median(ours), "events/s")
    report_paired_ratio("ratio relay / direct, concurrent", ours, theirs, 0.5)
    their_delays.sort()
    our_delays.sort()
    for label, delays in (("commit -> Kafka append, no outbox", their_delays),
                          ("commit -> Kafka append, outbox + relay", our_delays)):
        print(f"  {label:<52} p50 {percentile_ms(delays, 0.5):.0f} ms, p99 {percentile_ms(delays, 0.99):.0f} ms", flush=True)
