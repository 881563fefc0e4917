"""The outbox relay: publishes committed outbox rows to Kafka, in order, exactly as written.

One relay is active at a time (a PostgreSQL advisory lock elects it; others wait as standby),
so per-todo order cannot be broken by two relays racing. The relay wakes on NOTIFY from the
command's transaction instead of sleeping between polls, sends rows in id order with an
idempotent producer (acks=all, no duplicates on retry, order kept per partition, no
delivery timeout: while Kafka is down the events wait and go out when it returns), and marks
rows sent only after the broker acknowledged them.

A relay killed between the broker's ack and the UPDATE republishes those rows when it
restarts: consumers dedupe by eventId and aggregateVersion, as at-least-once asks.
"""
import logging
import threading
import time
from dataclasses import dataclass

import psycopg
from confluent_kafka import KafkaError, KafkaException, Producer
from django.db import connection, transaction

from apps.todos.services import OUTBOX_CHANNEL
from polystack.streaming import kafka

logger = logging.getLogger("apps.todos.relay")

LEADER_LOCK_KEY = 7_361_001  # pg_advisory_lock key of the active relay
WAITING_LOG_EVERY_S = 10.0


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0


def _libpq_conninfo() -> str:
    params = connection.get_connection_params()
    keys = {"host", "port", "user", "password", "dbname", "connect_timeout"}
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if k in keys and v})


class Relay:
    def __init__(self, *, batch_size: int = 1000, producer_overrides: dict | None = None, idle_wait_s: float = 1.0):
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self.stats = RelayStats()
        self._stopping = threading.Event()
        self._producer = Producer(
            kafka.producer_config(
                **{
                    "message.timeout.ms": 0,  # never give up: order and completeness beat latency
                    "logger": logging.getLogger("polystack.streaming.librdkafka"),
                    **(producer_overrides or {}),
                }
            )
        )

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        """Wait to become the active relay, then publish until stop()."""
        with psycopg.connect(_libpq_conninfo(), autocommit=True) as control:
            self._become_leader(control)
            if self._stopping.is_set():
                return
            control.execute(f"LISTEN {OUTBOX_CHANNEL}")
            logger.info("relay active: publishing the outbox")
            while not self._stopping.is_set():
                if self.publish_pending() == 0:
                    # Sleep until a command commits (NOTIFY) or idle_wait_s passes.
                    for _ in control.notifies(timeout=self.idle_wait_s, stop_after=1):
                        pass
        self._producer.flush(10)

    def _become_leader(self, control: psycopg.Connection) -> None:
        announced = False
        while not self._stopping.is_set():
            if control.execute("SELECT pg_try_advisory_lock(%s)", [LEADER_LOCK_KEY]).fetchone()[0]:
                return
            if not announced:
                logger.info("another relay is active; standing by")
                announced = True
            self._stopping.wait(1.0)

    def publish_pending(self) -> int:
        """Publish every unsent row, a batch at a time; return how many were published."""
        total = 0
        while not self._stopping.is_set():
            published = self._publish_batch()
            total += published
            if published < self.batch_size:
                break
        return total

    def _publish_batch(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT id, topic, key, envelope::text, envelope->>'eventType',
                       envelope->>'schemaVersion', envelope->>'correlationId'
                FROM todos_outboxevent WHERE sent_at IS NULL ORDER BY id LIMIT %s
                """,
                [self.batch_size],
            )
            rows = cursor.fetchall()
        if not rows:
            return 0
        delivered: list[int] = []
        failures: list[KafkaError] = []

        def on_delivery(error, message, row_id):
            if error is None:
                delivered.append(row_id)
            else:
                failures.append(error)

        for row_id, topic, key, value, event_type, schema_version, correlation_id in rows:
            headers = [
                ("eventType", event_type.encode()),
                ("schemaVersion", schema_version.encode()),
                ("correlationId", correlation_id.encode()),
            ]
            self._produce(topic, key, value, headers, lambda err, msg, row_id=row_id: on_delivery(err, msg, row_id))
        self._wait_for_acks(len(rows))
        if delivered:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("UPDATE todos_outboxevent SET sent_at = now() WHERE id = ANY(%s)", [delivered])
        if failures:
            # Only fatal producer errors end here (there is no delivery timeout).
            raise KafkaException(failures[0])
        self.stats.published += len(delivered)
        self.stats.batches += 1
        return len(delivered)

    def _produce(self, topic, key, value, headers, callback) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, headers=headers, on_delivery=callback)
                return
            except BufferError:
                self._producer.poll(0.1)

    def _wait_for_acks(self, count: int) -> None:
        waited_since = time.monotonic()
        last_log = waited_since
        while self._producer.flush(1.0) > 0:
            now = time.monotonic()
            if now - last_log >= WAITING_LOG_EVERY_S:
                logger.warning(
                    "waiting %.0f s for Kafka to acknowledge %d events; they stay in the outbox until it does",
                    now - waited_since, len(self._producer),
                )
                last_log = now
            if self._stopping.is_set():
                logger.warning("stopping with events unacknowledged; they are republished on restart")
                return
