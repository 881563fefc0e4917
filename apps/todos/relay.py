"""The outbox relay: publishes committed outbox rows to Kafka, in order, exactly as written.

One relay is active at a time (a PostgreSQL advisory lock elects it; others wait as standby),
so per-todo order cannot be broken by two relays racing. The relay wakes on NOTIFY from the
command's transaction instead of sleeping between polls, sends rows in id order with an
idempotent producer (acks=all, no duplicates on retry, order kept per partition, no
delivery timeout: while Kafka is down the events wait and go out when it returns), and marks
rows sent only after the broker acknowledged them.

A relay killed between the broker's ack and the DELETE republishes those rows when it
restarts: consumers dedupe by eventId and aggregateVersion, as at-least-once asks.
"""
import logging
import threading
import time
from dataclasses import dataclass
from functools import partial

import psycopg
from confluent_kafka import KafkaError, KafkaException, Producer
from django.db import connection, transaction

from apps.todos.models import OutboxEvent
from apps.todos.services import OUTBOX_CHANNEL
from polystack import db, metrics, outages
from polystack.streaming import kafka

logger = logging.getLogger("apps.todos.relay")

OUTBOX = OutboxEvent._meta.db_table
WAITING_LOG_EVERY_S = 10.0


class RelayError(Exception):
    """The relay cannot go on (e.g. a row names a topic the cluster does not have)."""


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0


class Relay:
    def __init__(self, *, batch_size: int = 2000, producer_overrides: dict | None = None, idle_wait_s: float = 1.0):
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self.stats = RelayStats()
        self._stopping = threading.Event()
        self._known_topics: set[str] = set()
        self._overtakable = False  # a read of this pass saw a transaction in progress
        # Rows produced and not yet acknowledged, and rows acknowledged and not yet deleted.
        # They outlive a pass cut short by an outage: no row is read (and sent) again while it
        # is in flight, and an acknowledged row is deleted before anything else once the
        # database is back. That keeps "published once" true across outages.
        self._in_flight: set[int] = set()
        self._acked: list[int] = []
        self._failures: list[KafkaError] = []
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
        """Publish until stop(), waiting out PostgreSQL or Kafka being down (with capped
        backoff, for as long as it takes) instead of exiting: the outbox keeps the events."""
        outages.run_through(self._run_once, stopping=self._stopping, logger=logger, who="the relay",
                            waiting="events wait in the outbox")

    def _run_once(self) -> None:
        """Wait to become the active relay, then publish until stop()."""
        with psycopg.connect(db.conninfo(), autocommit=True) as control:
            self._become_leader(control)
            if self._stopping.is_set():
                return
            control.execute(f"LISTEN {OUTBOX_CHANNEL}")
            logger.info("relay active: publishing the outbox")
            while not self._stopping.is_set():
                self.publish_pending()
                # A pass ends with a read that found nothing more, so what commits later says
                # so (the outbox's trigger NOTIFYs at commit): sleep until then, or until
                # idle_wait_s passes, and take every notice that came meanwhile as one wake-up.
                for _ in control.notifies(timeout=self.idle_wait_s, stop_after=1):
                    pass
                for _ in control.notifies(timeout=0):
                    pass
        self._producer.flush(10)

    def _become_leader(self, control: psycopg.Connection) -> None:
        announced = False
        while not self._stopping.is_set():
            if control.execute("SELECT pg_try_advisory_lock(%s)", [db.AdvisoryLock.RELAY_LEADER]).fetchone()[0]:
                return
            if not announced:
                logger.info("another relay is active; standing by")
                announced = True
            self._stopping.wait(1.0)

    def publish_pending(self) -> int:
        """Publish every unsent row; return how many were acknowledged (and deleted).

        Pipelined: the next batch is read and produced while the broker acknowledges the
        previous one, so database and broker work overlap. Reading on past the rows in flight
        is only safe while no row below them is still unsent: a row committed late with a
        lower id (ids are taken before commit) must go out before anything its todo wrote
        after it. Each read therefore checks, in the same snapshot, that the unsent rows up to
        the highest id read are exactly those in flight. When one is not, the pass drains what
        is in flight and the next pass starts again from the lowest unsent id.
        """
        published_before, began = self.stats.published, time.monotonic()
        in_flight, acked, failures = self._in_flight, self._acked, self._failures
        if in_flight.difference(acked):  # a pass cut short: its rows are acknowledged before any is read again
            self._wait_for_acks(in_flight, acked, until=0)
        try:
            self._pump(in_flight, acked, failures)
        finally:
            if acked:  # whatever the broker took leaves the outbox, even on the way out
                self._delete_acked_and_read(after=None, in_flight=in_flight, acked=acked, rows=False)
        if self.stats.published > published_before:
            metrics.RELAY_PASS_SECONDS.observe(time.monotonic() - began)
        return self.stats.published - published_before

    def _pump(self, in_flight: set[int], acked: list[int], failures: list) -> None:
        high = None  # the highest id read in this pass
        self._overtakable = False  # see _delete_acked_and_read
        delivered = self._on_delivery(acked, failures)
        while not self._stopping.is_set():
            # Rows acknowledged so far leave the outbox in the transaction that reads the next ones.
            rows = self._delete_acked_and_read(after=high, in_flight=in_flight, acked=acked)
            self._check_topics(rows)
            for row_id, topic, key, value, event_type, schema_version, correlation_id, event_id in rows:
                headers = [
                    ("eventType", event_type.encode()),
                    ("eventId", str(event_id).encode()),
                    ("schemaVersion", str(schema_version).encode()),
                    ("correlationId", correlation_id.encode()),
                ]
                # partial() is built in C: a closure per row cost a measurable share of the loop.
                kafka.produce(self._producer, topic, key=key, value=value, headers=headers,
                              on_delivery=partial(delivered, row_id))
                in_flight.add(row_id)
            if rows:
                high = rows[-1][0]
            # At most two batches in flight; after a short read, wait for all of them.
            short = len(rows) < self.batch_size
            self._wait_for_acks(in_flight, acked, until=0 if short else self.batch_size)
            if failures:
                # Only fatal producer errors end here (there is no delivery timeout).
                raise KafkaException(failures[0])
            if short and rows and not in_flight.difference(acked):
                # A short read (in a snapshot where nothing below it was missing) took every
                # unsent row there was, and all are acknowledged: done. A row that commits
                # later NOTIFYs, and the next pass starts again from the lowest unsent id.
                return
            if not rows and not in_flight.difference(acked):
                self._delete_acked_and_read(after=None, in_flight=in_flight, acked=acked, rows=False)  # delete the last acks
                if high is None:
                    return  # nothing unsent at all
                high = None  # a new pass from the lowest id picks up late rows
                self._overtakable = False

    def _check_topics(self, rows: list[tuple]) -> None:
        """Fail loudly on a topic the cluster does not have. With no delivery timeout the
        producer would otherwise wait for it forever, holding the relay's leadership."""
        missing = {row[1] for row in rows} - self._known_topics
        if not missing:
            return
        existing = set(self._producer.list_topics(timeout=10).topics)  # Kafka down: raises, and run() waits
        self._known_topics |= missing & existing
        if missing - existing:
            raise RelayError(
                f"outbox rows name topic(s) the cluster lacks: {', '.join(sorted(missing - existing))}; "
                "run `python manage.py ensuretopics`"
            )

    @staticmethod
    def _on_delivery(acked: list[int], failures: list):
        """The delivery report of one row: `callback(row_id, error, message)`."""

        def callback(row_id, error, message):
            if error is None:
                acked.append(row_id)
            else:
                failures.append(error)

        return callback

    def _delete_acked_and_read(
        self, *, after: int | None, in_flight: set[int], acked: list[int], rows: bool = True
    ) -> list[tuple]:
        """Delete the acknowledged rows, then read the next ones after `after` (none when a
        late row showed up below it), in one transaction and one snapshot.

        A late row can only come from a transaction in progress when a read of this pass took
        its snapshot: one that starts later takes a higher id, and a writer gets its
        transaction id before its outbox row takes a sequence number (services._append). So
        the count that looks for late rows (a scan of every id the pass read, a fifth of a
        bulk relay's time) runs only once a snapshot of the pass showed a transaction in
        progress; until then it has nothing to find."""
        if not acked and not rows:
            return []  # nothing to delete or read: no transaction at all
        with transaction.atomic(), connection.cursor() as cursor:
            if rows:  # the statements below must see one snapshot
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            deleted = list(acked)
            if deleted:
                # The ids as one array literal: letting the driver quote a list of thousands of
                # ints, one by one in Python, cost more than the DELETE itself.
                cursor.execute(f"DELETE FROM {OUTBOX} WHERE id = ANY(%s::bigint[])",
                               ["{" + ",".join(map(str, deleted)) + "}"])
            found = self._read(cursor, after=after, in_flight=len(in_flight) - len(deleted)) if rows else []
        # Only now, once the DELETE committed, are the rows no longer ours to track (should the
        # commit fail, they are deleted again, never read and sent again).
        if deleted:
            in_flight.difference_update(deleted)
            del acked[:len(deleted)]
            self.stats.published += len(deleted)
            self.stats.batches += 1
            metrics.RELAY_PUBLISHED.inc(len(deleted))
        return found

    def _read(self, cursor, *, after: int | None, in_flight: int) -> list[tuple]:
        if after is not None and self._overtakable:
            cursor.execute(f"SELECT count(*) FROM {OUTBOX} WHERE id <= %s", [after])
            if cursor.fetchone()[0] != in_flight:
                return []  # a late row: drain, then start again from the lowest id
        cursor.execute(
            "SELECT id, topic, key, payload, event_type, schema_version, correlation_id, event_id "
            f"FROM {OUTBOX} WHERE id > %s ORDER BY id LIMIT %s",
            [after or 0, self.batch_size],
        )
        found = cursor.fetchall()
        if found and not self._overtakable:
            cursor.execute("SELECT EXISTS (SELECT FROM pg_snapshot_xip(pg_current_snapshot()))")
            self._overtakable = cursor.fetchone()[0]
        return found

    def _wait_for_acks(self, in_flight: set[int], acked: list[int], *, until: int) -> None:
        """Serve delivery reports until no more than `until` rows are unacknowledged."""
        self._producer.poll(0)
        waited_since = last_log = time.monotonic()
        while len(in_flight) - len(acked) > until:
            self._producer.poll(0.05)
            now = time.monotonic()
            if now - last_log >= WAITING_LOG_EVERY_S:
                logger.warning(
                    "waiting %.0f s for Kafka to acknowledge %d events; they stay in the outbox until it does",
                    now - waited_since, len(in_flight) - len(acked),
                )
                last_log = now
            if self._stopping.is_set():
                logger.warning("stopping with events unacknowledged; they are republished on restart")
                return
