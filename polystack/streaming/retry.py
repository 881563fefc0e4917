"""Retries that do not block the partition: retry topics, as Spring Kafka's @RetryableTopic and
Uber's retry queues do it.

A consumer opts in with a RetryPolicy (`@consumer(..., retry=RetryPolicy(delays_s=(2, 10, 60)))`).
When its handler fails on a message with an error that is not the message's fault for good (not
a NonRetriableError) and not an outage (those are waited out where they are), the runner
publishes the message to `<topic>-retry-1`, commits, and goes on with the next one. The same
group also consumes the retry topics. A message there carries the time before which it must not
run (`retry.not-before`); until then the runner pauses that partition, instead of sleeping, and
goes on with everything else. Every message of `<topic>-retry-n` waits about the same delay, so
the partition's head is always the next one due. A failure there sends it on to
`<topic>-retry-(n+1)`; after the last one it goes to the topic's DLQ with the usual `dlq.*`
headers (naming the original topic, partition and offset) plus `dlq.attempts`.

The level of a message is the topic it was read from, never its headers: anyone who can write
to the broker can write headers, so a header can at most make a message wait its level's delay.

What it costs: per-key order. A message that is being retried is overtaken by the ones after
it; use it where each message stands alone (a delivery), not for state that folds events in
order (a projection).
"""
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import TopicPartition

from polystack.streaming.topics import resolve, retry_topic

logger = logging.getLogger("polystack.streaming.retry")

ATTEMPTS = "retry.attempts"
NOT_BEFORE = "retry.not-before"
ORIGINAL_TOPIC, ORIGINAL_PARTITION, ORIGINAL_OFFSET = "retry.original.topic", "retry.original.partition", "retry.original.offset"
_OURS = "retry."


@dataclass(frozen=True)
class RetryPolicy:
    """After a failed attempt, wait delays_s[n] (each ± jitter, a fraction) in `<topic>-retry-(n+1)`,
    then try again; max_attempts in all, the first one included, then the DLQ."""

    delays_s: tuple[float, ...] = (2.0, 10.0, 60.0)
    jitter: float = 0.2

    def __post_init__(self):
        object.__setattr__(self, "delays_s", tuple(float(delay) for delay in self.delays_s))
        if not self.delays_s or any(delay <= 0 for delay in self.delays_s):
            raise ValueError("a retry policy waits a positive delay before each retry")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction of the delay, from 0 up to 1")

    @classmethod
    def exponential(cls, *, first_s: float, factor: float, retries: int, jitter: float = 0.2) -> "RetryPolicy":
        return cls(delays_s=tuple(first_s * factor ** n for n in range(retries)), jitter=jitter)

    @property
    def retries(self) -> int:
        return len(self.delays_s)

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def topics(self, topic: str) -> tuple[str, ...]:
        """The retry topics of `topic` (unresolved names)."""
        return tuple(retry_topic(topic, level) for level in range(1, self.retries + 1))


@dataclass(frozen=True)
class NextStep:
    """Where a failed message goes: `topic` (a retry topic) with `headers`, or, when topic is
    None, the DLQ, as the message from `origin` (topic, partition, offset) after `attempts`."""

    topic: str | None
    headers: list[tuple[str, bytes]]
    origin: tuple[str, int, int]
    attempts: int


class RetryTopics:
    """The retry state of one runner: which topic is which level, and the paused partitions."""

    def __init__(self, policy: RetryPolicy, topics: list[str], *, delay_scale: float = 1.0):
        self.policy = policy
        self.delay_scale = delay_scale  # tests and demos shrink the delays
        self.level: dict[str, tuple[str, int]] = {}  # resolved topic -> (its source topic, level)
        self.chain: dict[str, list[str]] = {}  # resolved source -> its retry topics, level 1 first
        for source in topics:
            self.level[resolve(source)] = (resolve(source), 0)
            self.chain[resolve(source)] = [resolve(name) for name in policy.topics(source)]
            for level, name in enumerate(self.chain[resolve(source)], start=1):
                self.level[name] = (resolve(source), level)
        self.retry_topics = [topic for chain in self.chain.values() for topic in chain]
        self._paused: dict[tuple[str, int], float] = {}  # partition -> when to resume (monotonic)

    # --- holding back what is not due yet ----------------------------------------------------
    def hold(self, consumer, batch: list) -> tuple[list, dict[tuple[str, int], int]]:
        """Leave out of `batch` the messages of retry topics that are not due yet, and every later
        one of their partition; pause each such partition and seek it back to its first held
        message. Returns the batch to handle and {partition: offset to commit} of the held ones."""
        held: dict[tuple[str, int], int] = {}
        now_ms = time.time() * 1000
        kept = []
        for raw in batch:
            if raw.error() is not None or self.level.get(raw.topic(), (None, 0))[1] == 0:
                kept.append(raw)
                continue
            tp = (raw.topic(), raw.partition())
            if tp in held:
                continue
            wait_ms = self._wait_ms(raw, now_ms)
            if wait_ms <= 0:
                kept.append(raw)
                continue
            held[tp] = raw.offset()
            self._paused[tp] = time.monotonic() + wait_ms / 1000
        if held:
            partitions = [TopicPartition(topic, partition, offset) for (topic, partition), offset in held.items()]
            consumer.pause(partitions)
            for partition in partitions:
                consumer.seek(partition)
        return kept, held

    def _wait_ms(self, raw, now_ms: float) -> float:
        """How long the message must still wait: until its header's not-before, but never longer
        than its level's longest delay (a hostile header cannot park a partition for good)."""
        level = self.level[raw.topic()][1]
        longest = self.policy.delays_s[level - 1] * (1 + self.policy.jitter) * self.delay_scale * 1000
        value = dict(raw.headers() or ()).get(NOT_BEFORE)
        try:
            not_before = float(value)
        except (TypeError, ValueError):
            return 0.0
        if not math.isfinite(not_before):
            return 0.0
        # The cap on the wait itself: not_before - now with now ~1.8e12 ms is exact only to
        # about 0.2 µs, and a wait a hair over the cap is over it.
        return min(not_before - now_ms, longest)

    def resume_due(self, consumer) -> None:
        """Resume the paused partitions whose time came."""
        if not self._paused:
            return
        now = time.monotonic()
        due = [tp for tp, at in self._paused.items() if at <= now]
        if due:
            consumer.resume([TopicPartition(topic, partition) for topic, partition in due])
            for tp in due:
                del self._paused[tp]

    def next_resume_in(self) -> float | None:
        """Seconds until the next paused partition is due; None when none is paused."""
        return max(0.0, min(self._paused.values()) - time.monotonic()) if self._paused else None

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Partitions no longer ours: whoever gets them reads the header again."""
        for tp in partitions:
            self._paused.pop(tp, None)

    # --- sending a failure on ----------------------------------------------------------------
    def next_step(self, message, exc: Exception, *, group_id: str) -> NextStep:
        source, level = self.level[message.topic]
        attempts = level + 1  # the attempt that just failed
        origin = (message.topic, message.partition, message.offset) if level == 0 else _origin(message, source)
        if attempts > self.policy.retries:
            return NextStep(None, [], origin, attempts)
        delay_s = self.policy.delays_s[level] * random.uniform(1 - self.policy.jitter, 1 + self.policy.jitter)
        not_before = time.time() + delay_s * self.delay_scale
        headers = [(key, value) for key, value in message.headers if not key.startswith(_OURS)]
        headers += [
            (ATTEMPTS, str(attempts).encode()),
            (NOT_BEFORE, str(int(not_before * 1000)).encode()),
            (ORIGINAL_TOPIC, origin[0].encode()),
            (ORIGINAL_PARTITION, str(origin[1]).encode()),
            (ORIGINAL_OFFSET, str(origin[2]).encode()),
            ("retry.consumer.group", group_id.encode()),
            ("retry.error.class", type(exc).__name__.encode()),
            ("retry.error.message", str(exc)[:2000].encode("utf-8", "backslashreplace")),
            ("retry.failed.at", datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()),
        ]
        return NextStep(self.chain[source][level], headers, origin, attempts)


def _origin(message, source: str) -> tuple[str, int, int]:
    """Where a retried message first came from, by its headers (which we wrote, unless someone
    else did: a bad value falls back to the retry topic's own coordinates)."""
    try:
        partition = int(message.header(ORIGINAL_PARTITION))
        offset = int(message.header(ORIGINAL_OFFSET))
    except (TypeError, ValueError):
        return message.topic, message.partition, message.offset
    if message.header(ORIGINAL_TOPIC) != source or partition < 0 or offset < 0:
        return message.topic, message.partition, message.offset
    return source, partition, offset
