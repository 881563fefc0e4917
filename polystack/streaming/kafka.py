"""Kafka client configuration in one place, and a reachability check with one clear error."""
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, KafkaException, Message, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, ClusterMetadata, OffsetSpec
from django.conf import settings

# librdkafka logs every failed connection attempt; a check reports one clear error instead.
_quiet = logging.getLogger("polystack.streaming.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


class KafkaUnreachableError(Exception):
    """The brokers in KAFKA_BOOTSTRAP_SERVERS did not answer."""


def base_config(**overrides: Any) -> dict[str, Any]:
    config = {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "client.id": settings.KAFKA_CLIENT_ID,
    }
    config.update(overrides)
    return config


def quiet_config(**overrides: Any) -> dict[str, Any]:
    """Config for short-lived clients whose connection errors we report ourselves."""
    return base_config(logger=_quiet, error_cb=lambda error: None, **overrides)


def admin_client() -> AdminClient:
    return AdminClient(quiet_config())


def check_reachable(timeout: float = 5.0) -> ClusterMetadata:
    """The cluster's metadata, or KafkaUnreachableError with one clear line."""
    try:
        return admin_client().list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnreachableError(
            f"Kafka is unreachable at {settings.KAFKA_BOOTSTRAP_SERVERS} ({exc.args[0].str()})"
        ) from None


def producer_config(**overrides: Any) -> dict[str, Any]:
    """An idempotent producer: acks from all in-sync replicas, no duplicates on retry."""
    return base_config(
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            **overrides,
        }
    )


def produce(producer: Producer, topic: str, **kwargs: Any) -> None:
    """`producer.produce(topic, **kwargs)`, but when librdkafka's local queue is full it serves
    delivery reports until there is room, instead of raising BufferError."""
    while True:
        try:
            producer.produce(topic, **kwargs)
            return
        except BufferError:
            producer.poll(0.1)


def dead_letter_headers(*, headers: list | None, topic: str, partition: int, offset: int, group_id: str,
                        exc: Exception, attempts: int | None = None) -> list[tuple[str, bytes]]:
    """A dead letter's headers: the original ones, then where it came from and why it failed
    (and, after retries, how often it was tried). Every role writes these same `dlq.*` headers,
    whatever its loop."""
    return [
        *(headers or []),
        ("dlq.original.topic", topic.encode()),
        ("dlq.original.partition", str(partition).encode()),
        ("dlq.original.offset", str(offset).encode()),
        ("dlq.consumer.group", group_id.encode()),
        ("dlq.error.class", type(exc).__name__.encode()),
        ("dlq.error.message", str(exc)[:2000].encode("utf-8", "backslashreplace")),
        ("dlq.failed.at", datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()),
        *([("dlq.attempts", str(attempts).encode())] if attempts is not None else []),
    ]


def is_fatal(error: KafkaError) -> bool:
    """Whether the client is done for: a fatal error, or the consumer's `_FATAL`, whose
    `fatal()` is false (confluent-kafka-python #869). A static member fenced by another with its
    group.instance.id gets that `_FATAL` from poll, after a broker restart too, and never
    consumes again: only a new process gets the partitions back."""
    return error.fatal() or error.code() == KafkaError._FATAL


# What a partition answers while its leader is not settled (a topic created a moment ago), and
# what the client says while its own metadata does not have the topic yet.
LEADER_UNKNOWN = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                   KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC}


def high_watermark(consumer: Consumer, topic: str, partition: int, timeout: float = 10.0) -> int:
    """The offset the next record of topic[partition] will get. A topic created a moment ago may
    not have its leader known yet (NOT_LEADER_FOR_PARTITION): retriable errors are tried again
    until `timeout`."""
    return watermarks(consumer, topic, partition, timeout)[1]


def watermarks(consumer: Consumer, topic: str, partition: int, timeout: float = 10.0) -> tuple[int, int]:
    """topic[partition]'s first offset held and the offset its next record will get, asked
    again on the errors of a topic created a moment ago (as high_watermark)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0]  # a plain error code here: retriable() is not set for these
            if not (error.retriable() or error.code() in LEADER_UNKNOWN) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the cluster's metadata catching up: nothing to wait on but time


def end_offset(topic: str, partition: int, timeout: float = 10.0) -> int:
    """The offset the next record of topic[partition] will get (its high watermark)."""
    consumer = Consumer(quiet_config(**{"group.id": "polystack-watermarks", "enable.auto.commit": False}))
    try:
        return high_watermark(consumer, topic, partition, timeout)
    finally:
        consumer.close()


def topic_ends(topic: str, *, committed: bool, timeout: float = 30.0,
               admin: AdminClient | None = None) -> dict[int, int]:
    """Each partition of `topic` and its end: its high watermark, or (committed) its last
    stable offset, before which no transaction is open; what a read_uncommitted and a
    read_committed consumer can read up to. Asked again while leaders settle (a topic created
    a moment ago, a broker back), until `timeout`."""
    admin = admin or admin_client()
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    deadline = time.monotonic() + timeout
    while True:
        futures = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
                                     isolation_level=level, request_timeout=10)
        try:
            return {tp.partition: future.result().offset for tp, future in futures.items()}
        except KafkaException as exc:
            if exc.args[0].code() not in LEADER_UNKNOWN or time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the cluster's metadata catching up: nothing to wait on but time


def in_open_transactions(topic: str) -> int:
    """Records of `topic` written in transactions not ended yet (neither committed nor
    aborted): those between each partition's last stable offset and its high watermark."""
    admin = admin_client()
    stable, high = topic_ends(topic, committed=True, admin=admin), topic_ends(topic, committed=False, admin=admin)
    return sum(high[p] - stable[p] for p in high)


def read_to_end(topic: str, *, group_id: str, timeout: float | None = None,
                progress: Callable[[int], None] | None = None) -> Iterator[Message]:
    """Every message `topic` holds now: each partition from its beginning to the end it had
    when this was called, in offset order. The consumer's position says when a partition is
    done, so transaction markers at the end count too. `progress(messages so far)` after each
    fetch; TimeoutError when not done within `timeout` seconds (None: as long as it takes)."""
    consumer = Consumer(base_config(**{"group.id": group_id, "enable.auto.commit": False}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: high_watermark(consumer, topic, p) for p in partitions}
        remaining = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = 0
        while remaining:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(remaining)} not read to their end in {timeout} s")
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if not message.error() and message.offset() < ends[message.partition()]:
                    seen += 1
                    yield message
            remaining -= {tp.partition for tp in consumer.position([TopicPartition(topic, p) for p in remaining])
                          if tp.offset >= ends[tp.partition]}
            if progress:
                progress(seen)
    finally:
        consumer.close()
