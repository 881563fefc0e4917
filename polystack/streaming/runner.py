"""The consumer loop every `runconsumer` role runs: batches, commits, DLQ, rebalances, shutdown.

Guarantees, in order of importance:
- At-least-once: an offset is committed only after the handler finished its message (and
  `flush()` its batch) and any DLQ copy was acknowledged by the broker. Handlers are
  idempotent, so the redeliveries this allows are harmless.
- One bad message never stops the loop: undecodable messages and NonRetriableError go to the
  DLQ with headers saying where they came from and why; other errors are retried with
  backoff, the whole batch at a time, and stop the consumer loudly when retries run out.
- When everything fails (the DLQ limit) the consumer stops loudly instead of flooding the DLQ.
- Shutdown is bounded: after stop() the batch in hand is finished or, past the join timeout,
  abandoned (its finished prefix committed), and a hung close() cannot hang the process.

Why not sentry-arroyo: it was the model (its DlqLimit is ours), but its DLQ producer cannot
add our `dlq.*` headers, and its per-message strategy pipeline costs throughput we measure in
`make bench`; the loop below is short enough to read in one sitting.
"""
import collections
import logging
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from django.conf import settings
from django.db import DataError, close_old_connections

from polystack import logs, metrics, outages
from polystack.gcpolicy import collector_paused
from polystack.streaming import kafka
from polystack.streaming.registry import ConsumerDefinition, DlqLimit, Message, NonRetriableError, decode_bytes
from polystack.streaming.retry import RetryTopics
from polystack.streaming.topics import resolve

logger = logging.getLogger("polystack.streaming.runner")

# Commit failures that only mean "the group moved on": the new owner gets the messages again.
_REBALANCE_ERRORS = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._NO_OFFSET,
    KafkaError._STATE,
}


# What a handler raises for a message that can never succeed: it goes to the DLQ. A DataError
# (a value PostgreSQL cannot store) fails the same way on every retry.
NON_RETRIABLE = (NonRetriableError, DataError)

ERROR_LOG_EVERY_S = 10.0

# How long an idle poll waits before the loop looks at its stop flag again.
IDLE_POLL_S = 0.5


class ConsumerStoppedError(Exception):
    """The consumer stopped loudly; the message says why. The process should exit non-zero."""


class DlqLimitExceededError(ConsumerStoppedError):
    pass


class RetriesExhaustedError(ConsumerStoppedError):
    pass


class Abandoned(BaseException):
    """Raised inside the loop when the join timeout passed: give up the batch in hand.

    A BaseException so that a handler's `except Exception` cannot swallow it.
    """


@dataclass
class RunnerOptions:
    max_batch_size: int | None = None  # None: the definition's
    max_batch_time_ms: int | None = None
    join_timeout_s: float = 10.0
    close_timeout_s: float = 10.0
    group_id: str | None = None
    auto_offset_reset: str = "earliest"
    healthcheck_file: Path | None = None
    retry_backoff_s: float = 0.2
    retry_backoff_max_s: float = 10.0


@dataclass
class RunnerStats:
    consumed: int = 0
    handled: int = 0
    dead_lettered: int = 0
    retried: int = 0  # sent to a retry topic
    batches: int = 0
    commits: int = 0
    assigned: set[tuple[str, int]] = field(default_factory=set)


class _DlqLimiter:
    """Counts messages and remembers the positions of invalid ones within the window.

    Valid messages are counted in bulk (`valid(n)`), so the hot path costs nothing per message.
    """

    def __init__(self, limit: DlqLimit):
        self.limit = limit
        self.seen = 0
        self.consecutive = 0
        self.invalid_at: collections.deque[int] = collections.deque()

    def valid(self, count: int) -> None:
        if count:
            self.seen += count
            self.consecutive = 0

    def invalid(self) -> None:
        """Count one more invalid message; raise if that breaks the limit."""
        self.invalid_at.append(self.seen)
        self.seen += 1
        self.consecutive += 1
        limit = self.limit
        if limit.max_consecutive is not None and self.consecutive > limit.max_consecutive:
            raise DlqLimitExceededError(
                f"{self.consecutive} invalid messages in a row (limit {limit.max_consecutive})"
            )
        while self.invalid_at[0] < self.seen - limit.window:
            self.invalid_at.popleft()
        if (
            limit.max_ratio is not None
            and self.seen >= limit.window
            and len(self.invalid_at) / limit.window > limit.max_ratio
        ):
            raise DlqLimitExceededError(
                f"{len(self.invalid_at)} of the last {limit.window} messages invalid (limit {limit.max_ratio:.0%})"
            )


class Runner:
    def __init__(self, definition: ConsumerDefinition, options: RunnerOptions | None = None):
        self.definition = definition
        self.options = options or RunnerOptions()
        self.group_id = self.options.group_id or definition.group_id
        self.topics = [resolve(topic) for topic in definition.topics]
        # The DLQ of each subscribed topic (resolved names).
        self.dlq_topics = {topic: resolve(definition.dlq_for(name))
                           for topic, name in zip(self.topics, definition.topics) if definition.dlq_for(name)}
        self._retries: RetryTopics | None = None
        self._held: dict[tuple[str, int], int] = {}  # partitions of this batch held back until due
        if definition.retry is not None:
            self._retries = RetryTopics(definition.retry, list(definition.topics),
                                        delay_scale=settings.STREAMING_RETRY_DELAY_SCALE)
            for topic, (source, _) in self._retries.level.items():
                self.dlq_topics[topic] = self.dlq_topics[source]  # a retried message's DLQ is its topic's
            self.topics += self._retries.retry_topics
        self.batch_size = self.options.max_batch_size or definition.max_batch_size
        batch_time_ms = self.options.max_batch_time_ms
        self.batch_time_s = (definition.max_batch_time_ms if batch_time_ms is None else batch_time_ms) / 1000
        self.stats = RunnerStats()
        self.close_hung = False
        self._stopping = threading.Event()
        self._abandon_at: float | None = None
        self._stop_requested = False
        self._handler = definition.handler_factory()
        self._limiter = _DlqLimiter(definition.dlq_limit)
        self._decoder = None if definition.decoder is decode_bytes else definition.decoder
        self._pending: dict[tuple[str, int], int] = {}  # done but not yet committed
        self._commit_interval_s = definition.commit_interval_ms / 1000
        self._next_commit_at = 0.0
        self._uncommitted = False  # finished work since the last commit
        # The partitions we own, kept by the rebalance callbacks: asking the consumer with
        # assignment() is a round trip to librdkafka's main thread (~0.2 ms, once a batch).
        self._assignment: list[TopicPartition] = []
        self._consumer: Consumer | None = None
        self._dlq: Producer | None = None
        self._dlq_unflushed = False
        self._log_extra = f"consumer={definition.name} group={self.group_id}"
        name, group = definition.name, self.group_id
        self._handled = metrics.CONSUMER_MESSAGES.labels(name, group, "handled")
        self._dead_lettered = metrics.CONSUMER_MESSAGES.labels(name, group, "dead_lettered")
        self._retried = metrics.CONSUMER_MESSAGES.labels(name, group, "retried")
        self._batch_size = metrics.CONSUMER_BATCH_SIZE.labels(name)
        self._handle_seconds = metrics.CONSUMER_HANDLE_SECONDS.labels(name)
        self._assigned_now = metrics.CONSUMER_ASSIGNED.labels(name, group)
        self._errors_logged: dict[int, tuple[float, int]] = {}  # error code -> (last logged, repeats since)

    # --- control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to stop after the batch in hand (thread-safe, idempotent)."""
        if not self._stopping.is_set():
            self._abandon_at = time.monotonic() + self.options.join_timeout_s
            self._stop_requested = True  # a plain attribute: cheap to read per message
            self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop gracefully; a second one, or the join timeout, abandons the batch.

        Only from the main thread (Python delivers signals there).
        """

        def abandon(signum, frame):
            raise Abandoned()

        def on_signal(signum, frame):
            if self.stopping:
                logger.warning("second %s: abandoning the batch %s", signal.Signals(signum).name, self._log_extra)
                raise Abandoned()
            logger.info(
                "%s: stopping after the batch in hand (at most %.1f s) %s",
                signal.Signals(signum).name,
                self.options.join_timeout_s,
                self._log_extra,
            )
            self.stop()
            # A handler stuck in one call is interrupted by this alarm at the join timeout.
            signal.signal(signal.SIGALRM, abandon)
            signal.setitimer(signal.ITIMER_REAL, self.options.join_timeout_s)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    # --- clients (consumer_config and the rebalance callbacks are what a subclass extends) ----
    def consumer_config(self) -> dict:
        auto = self.definition.commit_mode == "auto"
        return kafka.base_config(
            **{
                "group.id": self.group_id,
                "enable.auto.commit": auto,
                # Even in auto mode, only offsets we stored (after handling) are committed.
                "enable.auto.offset.store": False,
                "auto.offset.reset": self.options.auto_offset_reset,
                "partition.assignment.strategy": "cooperative-sticky",
                # A crashed member's partitions move after 10 s, not librdkafka's default 45 s.
                "session.timeout.ms": 10_000,
                "logger": logging.getLogger("polystack.streaming.librdkafka"),
                "error_cb": self._on_error,
                **self.definition.consumer_config,
            }
        )

    def _on_error(self, error: KafkaError) -> None:
        if kafka.is_fatal(error):
            logger.error("fatal Kafka error: %s %s", error.str(), self._log_extra)
            self.stop()
            return
        # While the cluster is unreachable librdkafka reports each reconnect (every ~50 ms):
        # say each kind of error once per ERROR_LOG_EVERY_S, with how often it came.
        now = time.monotonic()
        seen, repeats = self._errors_logged.get(error.code(), (0.0, 0))
        if now - seen >= ERROR_LOG_EVERY_S:
            again = f" (and {repeats} more like it)" if repeats else ""
            logger.warning("Kafka error: %s%s %s", error.str(), again, self._log_extra)
            self._errors_logged[error.code()] = (now, 0)
        else:
            self._errors_logged[error.code()] = (seen, repeats + 1)

    def on_assign(self, consumer, partitions) -> None:
        metrics.CONSUMER_REBALANCES.labels(self.definition.name, self.group_id, "assigned").inc(len(partitions))
        self._set_assigned(self.stats.assigned | {(p.topic, p.partition) for p in partitions})
        logger.info("assigned %s %s", _describe(partitions), self._log_extra)

    def on_revoke(self, consumer, partitions) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        metrics.CONSUMER_REBALANCES.labels(self.definition.name, self.group_id, "revoked").inc(len(partitions))
        if self._retries is not None:
            self._retries.forget(revoked)
        # Work finished on these partitions must be committed before another member gets them.
        self._commit({tp: off for tp, off in self._pending.items() if tp in revoked}, wait=True)
        for tp in revoked:
            self._pending.pop(tp, None)
        self._set_assigned(self.stats.assigned - revoked)
        logger.info("revoked %s %s", _describe(partitions), self._log_extra)

    def on_lost(self, consumer, partitions) -> None:
        lost = {(p.topic, p.partition) for p in partitions}
        metrics.CONSUMER_REBALANCES.labels(self.definition.name, self.group_id, "lost").inc(len(partitions))
        if self._retries is not None:
            self._retries.forget(lost)
        for tp in lost:
            self._pending.pop(tp, None)  # no longer ours to commit; the new owner redelivers
        self._set_assigned(self.stats.assigned - lost)
        logger.warning("lost %s %s", _describe(partitions), self._log_extra)

    def _set_assigned(self, assigned: set[tuple[str, int]]) -> None:
        self.stats.assigned = assigned
        self._assigned_now.set(len(assigned))
        self._assignment = [TopicPartition(topic, partition) for topic, partition in sorted(assigned)]

    # --- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Consume until stop(); raise ConsumerStoppedError on a loud stop."""
        self._connect()
        try:
            while not self.stopping:
                if self._retries is not None:
                    self._retries.resume_due(self._consumer)
                batch = self._next_batch()
                self._touch_healthcheck()
                if batch:
                    self._process(batch)
                self._commit_if_due()
        except Abandoned:
            logger.warning("join timeout passed: batch abandoned, it will be redelivered %s", self._log_extra)
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.setitimer(signal.ITIMER_REAL, 0)
            self._remove_healthcheck()
            self.close()

    def _connect(self) -> None:
        self._consumer = Consumer(self.consumer_config())
        if self.dlq_topics:
            self._dlq = Producer(kafka.producer_config(logger=logging.getLogger("polystack.streaming.librdkafka")))
        self._consumer.subscribe(
            self.topics, on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost
        )
        logger.info("consuming %s %s", ",".join(self.topics), self._log_extra)

    def _next_batch(self) -> list:
        """What is ready, up to the batch size; when nothing is, wait for the first message and
        then up to max_batch_time for more. Under load batches fill at once; when idle the
        first message is handled without waiting for company (latency matters to
        read-your-writes and live pushes)."""
        consume = self._consumer.consume
        batch = consume(num_messages=self.batch_size, timeout=0)
        if not batch:
            batch = consume(num_messages=1, timeout=IDLE_POLL_S)
            if batch and self.batch_size > 1:
                batch += consume(num_messages=self.batch_size - 1, timeout=self.batch_time_s)
        return batch

    def _process(self, batch: list) -> None:
        if self._retries is not None:  # retried messages not due yet wait, their partition paused
            batch, self._held = self._retries.hold(self._consumer, batch)
            if not batch:
                self._finish({}, 0)
                return
        self.stats.batches += 1
        self.stats.consumed += len(batch)
        self._batch_size.observe(len(batch))
        with self._handle_seconds.time():
            self._process_batch(batch)

    def _process_batch(self, batch: list) -> None:
        dead: set[tuple[str, int, int]] = set()  # DLQ'd in an earlier attempt of this batch
        handle_all = self._handle_batch if self.definition.handler_kind == "batch" else self._handle_all
        attempt = 0
        outage_wait = 0.0
        while True:
            try:
                with collector_paused():  # not while waiting out an outage: its retries' garbage goes
                    handle_all(batch, dead, first_attempt=attempt == 0)
                if outage_wait:
                    logger.info("dependencies are back: the batch went through %s", self._log_extra)
                break
            except (ConsumerStoppedError, Abandoned):
                raise
            except Exception as exc:
                self._discard()
                waited = self._wait_after_failure(exc, attempt, outage_wait)
                if waited is None:
                    return  # stopping: nothing of this batch is committed; it is redelivered
                attempt, outage_wait = waited

    def _wait_after_failure(self, exc: Exception, attempt: int, outage_wait: float) -> tuple[int, float] | None:
        """After a failed attempt at a batch (its writes discarded): wait out an outage for as
        long as it takes, retries untouched, or back off before the next retry, raising
        RetriesExhaustedError when there is none left. Returns the (attempt, outage wait) to go
        on with; None when the runner stops while waiting."""
        if outages.is_outage(exc):  # not the batch's fault
            outage_wait = outages.next_wait(outage_wait)
            logger.warning("%s; the batch waits, retrying in %.1f s %s", outages.describe(exc), outage_wait,
                           self._log_extra)
            close_old_connections()  # a broken connection is replaced, not reused
            return None if self._stopping.wait(outage_wait) else (attempt, outage_wait)
        attempt += 1
        if attempt > self.definition.max_retries:
            raise RetriesExhaustedError(f"batch failed {attempt} times, last with {type(exc).__name__}: {exc}") from exc
        delay = min(self.options.retry_backoff_s * 2 ** (attempt - 1), self.options.retry_backoff_max_s)
        logger.warning("batch failed (%s: %s); retry %d/%d in %.1f s %s", type(exc).__name__, exc, attempt,
                       self.definition.max_retries, delay, self._log_extra)
        return None if self._stopping.wait(delay) else (attempt, outage_wait)

    def _commit_if_due(self) -> None:
        """Commit the work finished since the last commit: after every batch, or at most once
        per the definition's commit interval (then also when the consumer has gone idle)."""
        if not self._uncommitted:
            return
        now = time.monotonic()
        if now >= self._next_commit_at:
            self._commit(dict(self._pending))  # each finished partition's latest position
            self._uncommitted = False
            self._next_commit_at = now + self._commit_interval_s

    def _handle_all(self, batch: list, dead: set, *, first_attempt: bool) -> None:
        """Decode and handle every message of the batch in offset order, park poison in the
        DLQ, flush, and note the positions to commit.

        This is the hot path (`make bench`): per good message it makes two calls into
        confluent-kafka, one view object and the handler call, and nothing else.
        """
        handle = self._handler.handle
        decoder = self._decoder
        limiter = self._limiter
        retries = self._retries
        view = Message  # a local: this loop runs once a message
        handled = valid_run = 0  # valid_run: handled since the last invalid message
        finished = batch  # the messages whose work is done
        logged = [] if logs.events_logged() else None  # the messages handled, for their log lines
        errors = False
        raw = None
        try:
            for raw in batch:
                if self._stop_requested and time.monotonic() > self._abandon_at:
                    logger.warning("join timeout passed: committing the finished part of the batch %s", self._log_extra)
                    finished = batch[: batch.index(raw)]
                    break
                if raw.error() is not None:
                    errors = True
                    self._consume_error(raw.error())
                    continue
                if dead and (raw.topic(), raw.partition(), raw.offset()) in dead:
                    continue
                try:
                    handle(view(raw, raw.value() if decoder is None else decoder(raw.value())))
                except NON_RETRIABLE as exc:
                    handled += valid_run
                    if first_attempt:
                        limiter.valid(valid_run)
                        limiter.invalid()
                    valid_run = 0
                    self._dead_letter(Message(raw, None), exc)
                    dead.add((raw.topic(), raw.partition(), raw.offset()))
                except Exception as exc:
                    if retries is None or isinstance(exc, ConsumerStoppedError) or outages.is_outage(exc):
                        raise  # the batch is retried in place, or waits out the outage
                    handled += valid_run
                    if first_attempt:
                        limiter.valid(valid_run)  # a failed delivery is not an invalid message
                    valid_run = 0
                    self._retry_later(Message(raw, None), exc)
                    dead.add((raw.topic(), raw.partition(), raw.offset()))
                else:
                    valid_run += 1
                    if logged is not None:
                        logged.append(raw)
        except DlqLimitExceededError:
            # What was done before the limit broke is kept.
            self._log_raws(logged)
            self._finish(self._offsets(batch[: batch.index(raw)], errors), handled)
            raise
        self._log_raws(logged)
        if first_attempt:
            limiter.valid(valid_run)
        # The consumer's positions are the batch's end, unless retries paused (and sought back)
        # a partition: then the messages say.
        done = self._positions() if finished is batch and retries is None else self._offsets(finished, errors)
        self._finish(done, handled + valid_run)

    def _handle_batch(self, batch: list, dead: set, *, first_attempt: bool) -> None:
        """The same for a handler with `handle_batch(messages)`, which applies a whole batch at
        once (one transaction) and returns the (message, NonRetriableError) pairs it rejected."""
        decoder = self._decoder
        messages: list[Message] = []
        rejected: list[tuple[Message, NonRetriableError]] = []
        for raw in batch:
            if raw.error() is not None:
                self._consume_error(raw.error())
                continue
            if dead and (raw.topic(), raw.partition(), raw.offset()) in dead:
                continue
            try:
                messages.append(Message(raw, raw.value() if decoder is None else decoder(raw.value())))
            except NonRetriableError as exc:
                rejected.append((Message(raw, None), exc))
        handler_rejects = list(self._handler.handle_batch(messages) or ())
        valid = len(messages) - len(handler_rejects)
        rejected += handler_rejects
        self._log_handled(messages, handler_rejects)
        if first_attempt and not rejected:
            self._limiter.valid(valid)  # the usual batch: nothing to order
        else:
            self._dead_letter_in_order(batch, rejected, dead, count=first_attempt)
        self._finish(self._positions(), valid)

    def _log_handled(self, messages: list[Message], rejected: list[tuple[Message, Exception]]) -> None:
        """The log lines of the messages a batch handled (not those it rejected)."""
        if logs.events_logged():
            refused = {id(message) for message, _ in rejected}
            self._log_raws([message.raw for message in messages if id(message) not in refused])

    def _log_raws(self, raws: list | None) -> None:
        if raws:
            logs.events_handled(raws, consumer=self.definition.name, group=self.group_id)

    def _dead_letter_in_order(self, batch: list, rejected: list, dead: set, *, count: bool) -> None:
        """Dead-letter a batch's rejects in message order and, on the first attempt (`count`),
        count them against the DLQ limit as the per-message path does: one invalid message in
        ten is not a run of invalid ones, however many a batch holds. If the limit breaks,
        what came before the message that broke it is dead-lettered and committed before the
        consumer stops, so a restart starts at that message with a fresh count instead of dying
        on the same batch again."""
        index = {(raw.topic(), raw.partition(), raw.offset()): i for i, raw in enumerate(batch)}
        rejected.sort(key=lambda pair: index[(pair[0].topic, pair[0].partition, pair[0].offset)])
        previous = -1
        for message, exc in rejected:
            at = index[(message.topic, message.partition, message.offset)]
            if count:
                self._limiter.valid(at - previous - 1)
                try:
                    self._limiter.invalid()
                except DlqLimitExceededError:
                    self._finish(self._offsets(batch[:at], errors=True), 0)
                    self._commit(dict(self._pending), wait=True)
                    raise
            previous = at
            self._dead_letter(message, exc)
            dead.add((message.topic, message.partition, message.offset))
        if count:
            self._limiter.valid(len(batch) - previous - 1)

    def _consume_error(self, error: KafkaError) -> None:
        if kafka.is_fatal(error):  # this consumer will never read again: a new process will
            raise ConsumerStoppedError(f"fatal Kafka error: {error.str()}")
        if error.code() != KafkaError._PARTITION_EOF:
            logger.warning("consume error: %s %s", error.str(), self._log_extra)

    def _positions(self) -> dict[tuple[str, int], int]:
        """After a whole batch was handled, the consumer's position on each partition is the
        next offset to read: exactly what to commit, in one call instead of a look at every
        message. (Nothing is consumed between the batch and this call.)"""
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in self._consumer.position(self._assignment)
            if tp.offset >= 0
        }

    def _offsets(self, batch: list, errors: bool) -> dict[tuple[str, int], int]:
        """The next offset to read, per partition, after these messages: the last one of
        each partition decides, so scan backwards and skip runs of the same partition."""
        offsets: dict[tuple[str, int], int] = {}
        single_topic = self.topics[0] if len(self.topics) == 1 else None
        last_partition = None
        for raw in reversed(batch):
            partition = raw.partition()
            if partition == last_partition and single_topic is not None:
                continue
            if errors and raw.error() is not None:
                continue
            last_partition = partition
            key = (single_topic or raw.topic(), partition)
            if key not in offsets:
                offsets[key] = raw.offset() + 1
        return offsets

    def _finish(self, done: dict, handled: int) -> None:
        if self._held:  # a held partition is done up to its first held message
            done = {**done, **self._held}
            self._held = {}
        flush = getattr(self._handler, "flush", None)
        if flush is not None:
            flush()
        if self._dlq_unflushed:
            remaining = self._dlq.flush(30)
            self._dlq_unflushed = remaining > 0
            if remaining:
                raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "DLQ messages not acknowledged"))
        self.stats.handled += handled
        self._handled.inc(handled)
        self._pending.update(done)
        self._uncommitted = True

    def _discard(self) -> None:
        discard = getattr(self._handler, "discard", None)
        if discard is not None:
            discard()

    def _retry_later(self, message: Message, exc: Exception) -> None:
        """Send a message its handler failed on to its next retry topic, or after the last
        attempt to its DLQ (polystack.streaming.retry)."""
        step = self._retries.next_step(message, exc, group_id=self.group_id)
        if step.topic is None:
            self._dead_letter(message, exc, origin=step.origin, attempts=step.attempts)
            return
        self._dlq.produce(step.topic, key=message.key, value=message.value, headers=step.headers)
        self._dlq.poll(0)
        self._dlq_unflushed = True
        self.stats.retried += 1
        self._retried.inc()
        metrics.RETRY_SENT.labels(self.definition.name, step.topic).inc()
        logger.warning(
            "attempt %d of %s[%d]@%d failed (%s: %s); retried from %s correlationId=%s %s",
            step.attempts, message.topic, message.partition, message.offset, type(exc).__name__, exc, step.topic,
            message.header("correlationId"), self._log_extra,
        )

    def _dead_letter(self, message: Message, exc: Exception, *, origin: tuple[str, int, int] | None = None,
                     attempts: int | None = None) -> None:
        """Park a message in its topic's DLQ; `origin` is where it first came from when that is not
        where it was read (a retry topic), `attempts` how often it was tried."""
        dlq_topic = self.dlq_topics.get(message.topic)
        if dlq_topic is None:
            raise ConsumerStoppedError(
                f"poison message at {message.topic}[{message.partition}]@{message.offset} "
                f"and no DLQ is configured: {type(exc).__name__}: {exc}"
            )
        topic, partition, offset = origin or (message.topic, message.partition, message.offset)
        headers = kafka.dead_letter_headers(headers=message.headers, topic=topic, partition=partition, offset=offset,
                                            group_id=self.group_id, exc=exc, attempts=attempts)
        self._dlq.produce(dlq_topic, key=message.key, value=message.value, headers=headers)
        self._dlq.poll(0)
        self._dlq_unflushed = True
        self.stats.dead_lettered += 1
        self._dead_lettered.inc()
        metrics.DLQ_SENT.labels(self.definition.name, dlq_topic).inc()
        logger.warning(
            "dead-lettered %s[%d]@%d to %s: %s: %s correlationId=%s %s",
            message.topic, message.partition, message.offset, dlq_topic,
            type(exc).__name__, exc, message.header("correlationId"), self._log_extra,
        )

    def _commit(self, offsets: dict[tuple[str, int], int], *, wait: bool = False) -> None:
        """Commit finished work. In the loop the commit is asynchronous (a synchronous one per
        batch costs a broker round trip, ~7 ms here); before partitions are revoked and at close
        it waits. Either way only offsets of finished work are ever sent, and a lost async
        commit means redelivery, never loss."""
        if not offsets:
            return
        partitions = [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]
        try:
            if self.definition.commit_mode == "auto":
                self._consumer.store_offsets(offsets=partitions)
            else:
                self._consumer.commit(offsets=partitions, asynchronous=not wait)
        except KafkaException as exc:
            if exc.args[0].code() not in _REBALANCE_ERRORS:
                raise
            logger.warning("commit skipped (%s): the new owner redelivers %s", exc.args[0].str(), self._log_extra)
        else:
            self.stats.commits += 1
        if wait or self.definition.commit_mode == "auto":
            for tp in offsets:
                if self._pending.get(tp) == offsets[tp]:
                    del self._pending[tp]

    # --- shutdown and health -------------------------------------------------------------
    def close(self) -> None:
        """Commit finished work and leave the group, within close_timeout_s (run() does it as
        it returns; a subclass that holds more adds to it)."""

        def close():
            try:
                self._commit(dict(self._pending), wait=True)
            except KafkaException as exc:
                logger.warning("final commit failed: %s %s", exc, self._log_extra)
            if self._dlq is not None:
                self._dlq.flush(self.options.close_timeout_s)
            self._consumer.close()

        closer = threading.Thread(target=close, name="consumer-close", daemon=True)
        closer.start()
        closer.join(self.options.close_timeout_s)
        if closer.is_alive():
            self.close_hung = True
            logger.error("close() did not return within %.1f s %s", self.options.close_timeout_s, self._log_extra)
        else:
            logger.info(
                "stopped after %d messages (%d dead-lettered) %s",
                self.stats.consumed, self.stats.dead_lettered, self._log_extra,
            )

    def _touch_healthcheck(self) -> None:
        if self.options.healthcheck_file is not None:
            self.options.healthcheck_file.touch()

    def _remove_healthcheck(self) -> None:
        if self.options.healthcheck_file is not None:
            self.options.healthcheck_file.unlink(missing_ok=True)


def _describe(partitions: Iterable[TopicPartition]) -> str:
    return ",".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
