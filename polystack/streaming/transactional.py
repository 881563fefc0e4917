"""The exactly-once loop: consume, transform, produce — each batch one Kafka transaction.

For a consumer whose handler has `process(batch)` (a `TransactionalHandler`). Per batch:

1. consume a batch (reading only committed records: `isolation.level=read_committed`);
2. the handler reads and writes its state store and returns its outputs (`batch.send`) and the
   messages it rejects (`batch.reject`) — no side effect outside Kafka;
3. one transaction: the outputs, the dead letters, the state store's changelog records and the
   batch's offsets (`send_offsets_to_transaction` with the group's metadata) — all or nothing;
4. after the commit, the state store applies the batch's writes and saves them locally.

A transaction is never open while the consumer polls (a rebalance runs inside poll). On an
abortable error the transaction is aborted, the writes discarded and the consumer rewound to
the committed offsets: the batch is done again. A fatal error (another instance fenced this
one: `fatal()` is checked first, since librdkafka then answers with retriable-looking errors)
stops the role for its supervisor to restart.

Zombies: each process slot (`--instance`, default 0) has one stable `transactional.id`, so a
restarted process fences its killed predecessor at once and aborts the transaction it left
open (with a fresh id, readers would wait for that transaction to time out); the group's
metadata in each transaction lets the broker fence a member that lost its partitions (KIP-447).
"""
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from django.conf import settings

from polystack import metrics
from polystack.gcpolicy import collector_paused
from polystack.streaming import kafka
from polystack.streaming.registry import ConsumerDefinition, Message, NonRetriableError
from polystack.streaming.runner import ConsumerStoppedError, Runner, RunnerOptions
from polystack.streaming.state import PartitionStore
from polystack.streaming.topic_admin import ensure_topics
from polystack.streaming.topics import TopicSpec, resolve

logger = logging.getLogger("polystack.streaming.transactional")

TRANSACTION_TIMEOUT_S = 30.0
RESTORE_LOG_EVERY_S = 5.0


class FencedError(ConsumerStoppedError):
    """Another instance took over this one's transactions, or Kafka declared its producer dead."""


@dataclass
class Batch:
    """What a transactional handler works on: the messages, their partitions' state stores, and
    what it sends (outputs) and rejects (dead letters), all committed together."""

    messages: list[Message]
    stores: dict[int, PartitionStore]
    outputs: list[tuple[str, bytes | None, bytes | None, list | None]] = field(default_factory=list)
    rejected: list[tuple[Message, NonRetriableError]] = field(default_factory=list)
    _resolved: dict[str, str] = field(default_factory=dict)  # declared name -> name on the cluster

    def send(self, topic: str, *, key: bytes | str | None, value: bytes | None,
             headers: list | None = None) -> None:
        """Produce `value` to the declared `topic` when the batch commits."""
        resolved = self._resolved.get(topic) or self._resolved.setdefault(topic, resolve(topic))
        self.outputs.append((resolved, key.encode() if isinstance(key, str) else key, value, headers))

    def reject(self, message: Message, error: NonRetriableError) -> None:
        self.rejected.append((message, error))


class TransactionalHandler(Protocol):
    def process(self, batch: Batch) -> None: ...


def changelog_topic(group_id: str, store: str) -> str:
    return resolve(f"{group_id}-{store}-changelog")


@dataclass
class _Restore:
    """Reads a changelog partition from a store's position to its end, committed records only."""

    store: PartitionStore
    consumer: Callable[[], Consumer]

    def run(self, log_extra: str) -> int:
        consumer = self.consumer()
        tp = TopicPartition(self.store.changelog, self.store.partition)
        try:
            low, high = kafka.watermarks(consumer, tp.topic, tp.partition, timeout=30)  # a changelog made a moment ago
            if self.store.position > high or self.store.position < low:
                logger.warning("local state of %s[%d] is at %d, the changelog holds %d..%d: restoring from scratch %s",
                               tp.topic, tp.partition, self.store.position, low, high, log_extra)
                self.store.restart_from_scratch()
            if self.store.position >= high:
                return 0
            consumer.assign([TopicPartition(tp.topic, tp.partition, self.store.position or OFFSET_BEGINNING)])
            applied, logged = 0, time.monotonic()
            while True:
                # A short wait: the end may be a transaction marker, which no message reports.
                messages = consumer.consume(5000, timeout=0.1)
                records, done = [], False
                for message in messages:
                    error = message.error()
                    if error is not None:
                        done = done or error.code() == KafkaError._PARTITION_EOF
                        continue
                    records.append((message.key(), message.value(), message.offset()))
                self.store.apply_changelog(records)
                applied += len(records)
                if done or consumer.position([tp])[0].offset >= high:
                    return applied
                if time.monotonic() - logged > RESTORE_LOG_EVERY_S:
                    logged = time.monotonic()
                    logger.info("restoring %s[%d]: %d records so far %s", tp.topic, tp.partition, applied, log_extra)
        finally:
            consumer.close()


class TransactionalRunner(Runner):
    """Runner's loop (batching, signals, shutdown) with a transaction per batch instead of
    offset commits, and a state store per input partition."""

    def __init__(self, definition: ConsumerDefinition, options: RunnerOptions | None = None,
                 state_dir: Path | None = None, instance: str = "0"):
        super().__init__(definition, options)
        self.dlq_topic = resolve(definition.dlq_topic) if definition.dlq_topic else None  # one (checked at registration)
        self.transactional_id = f"{self.group_id}.{instance}"
        self.state_dir = Path(state_dir or settings.STREAM_STATE_DIR) / self.group_id
        self.changelog = changelog_topic(self.group_id, definition.store) if definition.store else None
        self.stores: dict[int, PartitionStore] = {}
        self.transactions = 0
        self.aborts = 0
        self._producer: Producer | None = None
        self._produced_to: dict[int, int] = {}  # changelog partition -> last offset acknowledged
        self._committed = metrics.TRANSACTIONS.labels(definition.name, "committed")

    # --- clients ---------------------------------------------------------------------------
    def consumer_config(self) -> dict:
        config = super().consumer_config()
        # Static membership (KIP-345), one member per process slot, as its transactional.id: a
        # slot restarted after a crash takes its partitions back at once, where a new member
        # would wait for the dead one's session to time out. (A member that stops cleanly does
        # not leave the group either: its partitions wait the session timeout for it.)
        config.update({"isolation.level": "read_committed", "enable.auto.commit": False,
                       "group.instance.id": self.transactional_id})
        return config

    def _restore_consumer(self) -> Consumer:
        return Consumer(kafka.base_config(**{
            "group.id": f"{self.group_id}-restore", "enable.auto.commit": False, "enable.partition.eof": True,
            "isolation.level": "read_committed", "logger": logging.getLogger("polystack.streaming.librdkafka"),
        }))

    def _ensure_changelog(self) -> None:
        metadata = kafka.admin_client().list_topics(timeout=30).topics
        partitions = len(metadata[self.topics[0]].partitions)
        spec = TopicSpec(self.changelog, partitions, description="state store changelog",
                         config={"cleanup.policy": "compact"})
        ensure_topics(admin=kafka.admin_client(), specs=[spec], replication_factor=settings.KAFKA_REPLICATION_FACTOR)

    # --- rebalances: stores follow their partitions ----------------------------------------
    def on_assign(self, consumer, partitions) -> None:
        super().on_assign(consumer, partitions)
        if self.changelog is None:
            return
        for tp in partitions:
            store = PartitionStore(changelog=self.changelog, partition=tp.partition,
                                   path=self.state_dir / f"{tp.topic}-{tp.partition}.sqlite3")
            store.open()
            began = time.monotonic()
            applied = _Restore(store, self._restore_consumer).run(self._log_extra)
            self.stores[tp.partition] = store
            logger.info("state of %s[%d]: %d keys, %d changelog records restored in %.1f s %s", tp.topic,
                        tp.partition, len(store), applied, time.monotonic() - began, self._log_extra)

    def on_revoke(self, consumer, partitions) -> None:
        # Every batch committed its transaction before the next poll: nothing is pending.
        metrics.CONSUMER_REBALANCES.labels(self.definition.name, self.group_id, "revoked").inc(len(partitions))
        self._drop_stores(partitions)
        self._set_assigned(self.stats.assigned - {(p.topic, p.partition) for p in partitions})
        logger.info("revoked %s %s", ",".join(f"{p.topic}[{p.partition}]" for p in partitions), self._log_extra)

    def on_lost(self, consumer, partitions) -> None:
        self._drop_stores(partitions)
        super().on_lost(consumer, partitions)

    def _drop_stores(self, partitions) -> None:
        for tp in partitions:
            store = self.stores.pop(tp.partition, None)
            if store is not None:
                store.close()

    # --- the loop (Runner.run's, with these clients) -----------------------------------------
    def _connect(self) -> None:
        if self.changelog:
            self._ensure_changelog()
        self._producer = Producer(kafka.producer_config(**{
            "transactional.id": self.transactional_id,
            "transaction.timeout.ms": int(TRANSACTION_TIMEOUT_S * 1000),
            "logger": logging.getLogger("polystack.streaming.librdkafka"),
        }))
        self._producer.init_transactions(TRANSACTION_TIMEOUT_S)
        self._consumer = Consumer(self.consumer_config())
        self._consumer.subscribe(self.topics, on_assign=self.on_assign, on_revoke=self.on_revoke,
                                 on_lost=self.on_lost)
        logger.info("consuming %s exactly once %s", ",".join(self.topics), self._log_extra)

    def _process(self, raw_batch: list) -> None:
        self.stats.batches += 1
        self.stats.consumed += len(raw_batch)
        self._batch_size.observe(len(raw_batch))
        with self._handle_seconds.time():
            self._process_batch(raw_batch)

    def _process_batch(self, raw_batch: list) -> None:
        # The group generation this batch was consumed in. librdkafka rejoins the group in its own
        # threads: a process frozen past its session timeout that wakes up mid-batch may be a
        # member again, of a newer generation, by the time it sends its offsets. Sent with that
        # generation they would be accepted for partitions another member took over and already
        # processed; sent with this one, the broker refuses them and the batch is aborted.
        group_metadata = self._consumer.consumer_group_metadata()
        attempt, outage_wait = 0, 0.0
        while not self.stopping or attempt == 0:
            with collector_paused():
                batch = self._decode(raw_batch)
            try:
                with collector_paused():
                    self._handler.process(batch)
            except Exception as exc:
                self._discard_writes()
                waited = self._wait_after_failure(exc, attempt, outage_wait)
                if waited is None:
                    return  # stopping: nothing of this batch was committed; it is done again
                attempt, outage_wait = waited
                continue
            if self._commit_batch(batch, group_metadata):
                self.stats.handled += len(batch.messages) - len(batch.rejected)
                self.stats.dead_lettered += len(batch.rejected)
                self._handled.inc(len(batch.messages) - len(batch.rejected))
                self._dead_lettered.inc(len(batch.rejected))
                self._log_handled(batch.messages, batch.rejected)
            return

    def _decode(self, raw_batch: list) -> Batch:
        decoder = self._decoder
        batch = Batch(messages=[], stores=self.stores)
        for raw in raw_batch:
            if raw.error() is not None:
                self._consume_error(raw.error())
                continue
            try:
                batch.messages.append(Message(raw, raw.value() if decoder is None else decoder(raw.value())))
            except NonRetriableError as exc:
                batch.rejected.append((Message(raw, None), exc))
        return batch

    def _commit_batch(self, batch: Batch, group_metadata) -> bool:
        """One transaction for everything the batch did; False when it was aborted (the
        consumer then stands at the last committed offsets, to do the batch again)."""
        producer = self._producer
        changes = {partition: store.changes() for partition, store in self.stores.items()}
        self._produced_to.clear()
        try:
            producer.begin_transaction()
            self._produce_all(batch.outputs)
            for message, error in batch.rejected:
                self._dead_letter_in_transaction(message, error)
            for partition, records in changes.items():
                self._produce_all([(self.changelog, key, value, None) for key, value in records[:-1]], partition)
                if records:  # its offset, once acknowledged, is where the store's changelog stands
                    key, value = records[-1]
                    kafka.produce(producer, self.changelog, key=key, value=value, partition=partition,
                                  on_delivery=self._changelog_delivered)
            if settings.STREAM_FAULT_PAUSE_BEFORE_OFFSETS_S:
                self._pause_before_offsets()
            offsets = [TopicPartition(topic, partition, offset)
                       for (topic, partition), offset in self._positions().items()]
            producer.send_offsets_to_transaction(offsets, group_metadata, TRANSACTION_TIMEOUT_S)
            self._commit_transaction()
        except KafkaException as exc:
            self._on_transaction_error(exc.args[0])
            return False
        self.transactions += 1
        self._committed.inc()
        for partition, store in self.stores.items():
            acknowledged = self._produced_to.get(partition)
            store.committed(changes.get(partition, []), None if acknowledged is None else acknowledged + 1)
        return True

    def _pause_before_offsets(self) -> None:
        """Fault injection (tests): a window with the transaction's records in the log and its
        offsets not sent yet."""
        self._producer.flush(TRANSACTION_TIMEOUT_S)
        logger.warning("fault injection: pausing %.1f s before sending the offsets %s",
                       settings.STREAM_FAULT_PAUSE_BEFORE_OFFSETS_S, self._log_extra)
        time.sleep(settings.STREAM_FAULT_PAUSE_BEFORE_OFFSETS_S)

    def _produce_all(self, records: list[tuple[str, bytes | None, bytes | None, list | None]],
                     partition: int | None = None) -> None:
        """The hot loop of a busy batch (several records per event): confluent-kafka's produce()
        itself, and kafka.produce's wait for room only when librdkafka's queue is full."""
        produce = self._producer.produce
        where = {} if partition is None else {"partition": partition}
        for topic, key, value, headers in records:
            try:
                if headers is None:
                    produce(topic, value, key, **where)
                else:
                    produce(topic, value, key, headers=headers, **where)
            except BufferError:
                kafka.produce(self._producer, topic, key=key, value=value, headers=headers, **where)

    def _commit_transaction(self) -> None:
        for attempt in range(5):
            try:
                self._producer.commit_transaction(TRANSACTION_TIMEOUT_S)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal() or error.txn_requires_abort() or not error.retriable() or attempt == 4:
                    raise
                logger.warning("commit of the transaction failed (%s): retrying %s", error.str(), self._log_extra)

    def _on_transaction_error(self, error: KafkaError) -> None:
        if error.fatal():  # before retriable(): a fenced producer's errors look retriable
            metrics.FENCED.labels(self.definition.name).inc()
            raise FencedError(f"the transaction failed fatally: {error.str()}")
        logger.warning("transaction aborted (%s): the batch will be done again %s", error.str(), self._log_extra)
        try:
            self._producer.abort_transaction(TRANSACTION_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].fatal():
                metrics.FENCED.labels(self.definition.name).inc()
                raise FencedError(f"aborting failed fatally: {exc.args[0].str()}") from None
            raise
        self.aborts += 1
        metrics.TRANSACTIONS.labels(self.definition.name, "aborted").inc()
        self._discard_writes()
        self._rewind()

    def _rewind(self) -> None:
        """Stand at the committed offsets again, to consume the aborted batch once more."""
        assignment = self._assignment
        if not assignment:
            return
        reset = OFFSET_BEGINNING if self.options.auto_offset_reset == "earliest" else OFFSET_END
        for tp in self._consumer.committed(assignment, timeout=TRANSACTION_TIMEOUT_S):
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else reset))

    def _discard_writes(self) -> None:
        for store in self.stores.values():
            store.discard()

    def _changelog_delivered(self, error, message) -> None:
        if error is None:
            partition = message.partition()
            self._produced_to[partition] = max(self._produced_to.get(partition, -1), message.offset())

    def _dead_letter_in_transaction(self, message: Message, exc: Exception) -> None:
        if self.dlq_topic is None:
            raise ConsumerStoppedError(f"poison message at {message.topic}[{message.partition}]@{message.offset} "
                                       f"and no DLQ is configured: {type(exc).__name__}: {exc}")
        headers = kafka.dead_letter_headers(headers=message.headers, topic=message.topic, partition=message.partition,
                                            offset=message.offset, group_id=self.group_id, exc=exc)
        kafka.produce(self._producer, self.dlq_topic, key=message.key, value=message.value, headers=headers)
        metrics.DLQ_SENT.labels(self.definition.name, self.dlq_topic).inc()
        logger.warning("dead-lettered %s[%d]@%d to %s: %s: %s %s", message.topic, message.partition, message.offset,
                       self.dlq_topic, type(exc).__name__, exc, self._log_extra)

    def close(self) -> None:
        self._drop_stores([TopicPartition(self.topics[0], partition) for partition in list(self.stores)])
        super().close()  # leaves the group within close_timeout_s (nothing is pending: batches committed)
        logger.info("stopped after %d messages, %d transactions (%d aborted), %d dead-lettered %s",
                    self.stats.consumed, self.transactions, self.aborts, self.stats.dead_lettered, self._log_extra)

