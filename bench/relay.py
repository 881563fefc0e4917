"""Relay: events/s from the outbox to Kafka (read rows, produce, wait for acks, delete them)
vs a bare confluent-kafka producer sending the same payloads with the same settings."""
import json
import time

from confluent_kafka import Producer
from django.db import connection

from apps.todos.relay import Relay
from bench.common import fast_envelopes, median, report, report_paired_ratio
from polystack.streaming import kafka
from polystack.streaming.topics import TODO_EVENTS, resolve

EVENTS = 50_000
ROUNDS = 5


def fill_outbox(envelopes: list[dict]) -> None:
    topic = resolve(TODO_EVENTS)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE todos_outboxevent")
        cursor.executemany(
            "INSERT INTO todos_outboxevent (event_id, topic, key, payload, event_type, schema_version, correlation_id, "
            "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now())",
            [(e["eventId"], topic, e["userId"], json.dumps(e), e["eventType"], e["schemaVersion"], e["correlationId"])
             for e in envelopes],
        )


def bare(envelopes: list[dict]) -> float:
    topic = resolve(TODO_EVENTS)
    payloads = [(e["userId"].encode(), json.dumps(e).encode(), [
        ("eventType", e["eventType"].encode()), ("schemaVersion", str(e["schemaVersion"]).encode()),
        ("correlationId", e["correlationId"].encode())]) for e in envelopes]
    producer = Producer(kafka.producer_config(**{"message.timeout.ms": 0}))
    started = time.perf_counter()
    for key, value, headers in payloads:
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
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


def run() -> None:
    envelopes = fast_envelopes(EVENTS, todos=5000)
    ours, theirs = [], []
    for _ in range(ROUNDS):
        theirs.append(bare(envelopes))
        ours.append(relay(envelopes))
    report("bare idempotent producer, same payloads (median)", median(theirs), "events/s")
    report("relay: outbox rows -> Kafka -> deleted (median)", median(ours), "events/s")
    report_paired_ratio("ratio relay / bare", ours, theirs, 0.5)
