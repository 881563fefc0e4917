"""Shared helpers of the benchmarks: a scratch topic, bulk produce, medians and ratios."""
import statistics
import uuid
from contextlib import contextmanager

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from polystack.streaming import kafka


@contextmanager
def scratch_topic(partitions: int):
    name = f"bench-{uuid.uuid4().hex[:10]}"
    admin = kafka.admin_client()
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    try:
        yield name
    finally:
        admin.delete_topics([name])[name].result(30)


def fill(topic: str, count: int, payload: bytes) -> None:
    producer = Producer(kafka.base_config(**{"linger.ms": 50, "batch.size": 1_000_000, "compression.type": "lz4",
                                             "queue.buffering.max.messages": 1_000_000}))
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value=payload, key=str(i % 1000).encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(label: str, value: float, unit: str) -> None:
    print(f"  {label:<52} {value:>12,.0f} {unit}", flush=True)


def report_ratio(label: str, ratio: float, target: float) -> None:
    verdict = "meets" if ratio >= target else "BELOW"
    print(f"  {label:<52} {ratio:>12.2f}   (target >= {target}: {verdict})", flush=True)
