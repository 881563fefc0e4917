"""The consumer runner against the real broker: DLQ, limits, retries, commits, group rebalance."""
import threading
import time

from polystack.streaming.registry import ConsumerDefinition, DlqLimit, Message, NonRetriableError, decode_json
from polystack.streaming.retry import RetryPolicy
from polystack.streaming.runner import DlqLimitExceededError, RetriesExhaustedError, Runner, RunnerOptions
from polystack.streaming.topics import retry_topic
from tests.helpers import (committed, consume_all, consume_to_end, create_topic, delete_topics, produce, unique,
                           wait_until)


class Recorder:
    """A handler that records what it handled; `poison` payloads raise NonRetriableError."""

    def __init__(self, fail_times: int = 0):
        self.handled: list[tuple[int, int, dict]] = []
        self.fail_times = fail_times
        self.lock = threading.Lock()

    def handle(self, message: Message) -> None:
        if message.payload.get("poison"):
            raise NonRetriableError(f"poison #{message.payload['n']}")
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("database went away")
        with self.lock:
            self.handled.append((message.partition, message.offset, message.payload))

    def numbers(self) -> list[int]:
        with self.lock:
            return [payload["n"] for _, _, payload in self.handled]


def definition(topic: str, handler, *, dlq: str | None, **options) -> ConsumerDefinition:
    return ConsumerDefinition(
        name=unique("c"), topics=(topic,), group_id=unique("group"), handler_factory=lambda: handler,
        dlq_topic=dlq, decoder=decode_json, **options,
    )


class Running:
    """Run a Runner in a thread for the duration of a `with` block."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.runner.run()
        except BaseException as exc:  # reported to the test
            self.error = exc

    def __enter__(self):
        self.thread.start()
        return self

    def join(self, timeout: float = 30.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "runner did not stop"

    def __exit__(self, *exc_info):
        self.runner.stop()
        self.join()


def test_poison_message_goes_to_the_dlq_with_headers_and_the_rest_is_processed(topic_factory):
    topic, dlq = topic_factory(), topic_factory(prefix="dlq")
    produce(topic, [{"n": n, "poison": n == 5} for n in range(10)],
            headers=[("correlationId", b"corr-1")])
    handler = Recorder()
    runner = Runner(definition(topic, handler, dlq=dlq))
    with Running(runner):
        wait_until(lambda: len(handler.handled) == 9, what="the nine good messages")
        wait_until(lambda: committed(runner.group_id, topic, 1)[0] == 10, what="offsets committed past the poison")

    assert handler.numbers() == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    [parked] = consume_all(dlq, 1)
    headers = {k: v.decode() for k, v in parked.headers()}
    assert headers["dlq.original.topic"] == topic
    assert headers["dlq.original.partition"] == "0"
    assert headers["dlq.original.offset"] == "5"
    assert headers["dlq.consumer.group"] == runner.group_id
    assert headers["dlq.error.class"] == "NonRetriableError"
    assert headers["dlq.error.message"] == "poison #5"
    assert headers["dlq.failed.at"].endswith("Z")
    assert headers["correlationId"] == "corr-1", "the original headers travel with the message"
    assert parked.value() == b'{"n": 5, "poison": true}'


def test_undecodable_message_goes_to_the_dlq(topic_factory):
    topic, dlq = topic_factory(), topic_factory(prefix="dlq")
    produce(topic, [{"n": 0}, b"{not json", {"n": 2}])
    handler = Recorder()
    with Running(Runner(definition(topic, handler, dlq=dlq))):
        wait_until(lambda: handler.numbers() == [0, 2], what="the two good messages")
    [parked] = consume_all(dlq, 1)
    assert parked.value() == b"{not json"
    assert dict(parked.headers())["dlq.error.class"] == b"NonRetriableError"


def test_dlq_limit_stops_the_consumer_instead_of_flooding_the_dlq(topic_factory):
    topic, dlq = topic_factory(), topic_factory(prefix="dlq")
    produce(topic, [{"n": n, "poison": True} for n in range(50)])
    runner = Runner(definition(topic, Recorder(), dlq=dlq, dlq_limit=DlqLimit(max_consecutive=3, max_ratio=None)))
    running = Running(runner).__enter__()
    running.join()

    assert isinstance(running.error, DlqLimitExceededError)
    assert "4 invalid messages in a row" in str(running.error)
    assert len(consume_to_end(dlq)) == 3
    assert committed(runner.group_id, topic, 1)[0] == 3, "what was dead-lettered is committed, no more"


def test_dlq_ratio_limit(topic_factory):
    topic, dlq = topic_factory(), topic_factory(prefix="dlq")
    produce(topic, [{"n": n, "poison": n % 2 == 0} for n in range(40)])
    runner = Runner(definition(topic, Recorder(), dlq=dlq, dlq_limit=DlqLimit(max_consecutive=None, max_ratio=0.4, window=10)))
    running = Running(runner).__enter__()
    running.join()
    assert isinstance(running.error, DlqLimitExceededError)
    assert "of the last 10 messages invalid" in str(running.error)


def test_retriable_errors_are_retried_and_nothing_is_dead_lettered(topic_factory):
    topic, dlq = topic_factory(), topic_factory(prefix="dlq")
    produce(topic, [{"n": n} for n in range(5)])
    handler = Recorder(fail_times=2)
    runner = Runner(definition(topic, handler, dlq=dlq), RunnerOptions(retry_backoff_s=0.05))
    with Running(runner):
        wait_until(lambda: sorted(set(handler.numbers())) == [0, 1, 2, 3, 4], what="all five handled")
    assert runner.stats.dead_lettered == 0
    assert consume_to_end(dlq) == []  # stopped: its DLQ producer was flushed


def test_exhausted_retries_stop_loudly_and_commit_nothing_of_the_batch(topic_factory):
    topic = topic_factory()
    produce(topic, [{"n": n} for n in range(5)])
    runner = Runner(definition(topic, Recorder(fail_times=10**6), dlq=None, max_retries=2),
                    RunnerOptions(retry_backoff_s=0.01))
    running = Running(runner).__enter__()
    running.join()
    assert isinstance(running.error, RetriesExhaustedError)
    assert "ConnectionError" in str(running.error)
    assert committed(runner.group_id, topic, 1)[0] < 0, "no offset committed"


def test_flush_failure_retries_the_whole_batch(topic_factory):
    """Buffered work is discarded and the batch handled again; offsets wait for a good flush."""
    topic = topic_factory()
    produce(topic, [{"n": n} for n in range(20)])

    class Buffered:
        def __init__(self):
            self.buffer, self.written, self.flushes = [], [], 0

        def handle(self, message):
            self.buffer.append(message.payload["n"])

        def flush(self):
            self.flushes += 1
            if self.flushes == 1:
                raise ConnectionError("write failed")
            self.written.extend(self.buffer)
            self.buffer.clear()

        def discard(self):
            self.buffer.clear()

    handler = Buffered()
    runner = Runner(definition(topic, handler, dlq=None, max_batch_size=20, max_batch_time_ms=2000),
                    RunnerOptions(retry_backoff_s=0.01))
    with Running(runner):
        wait_until(lambda: committed(runner.group_id, topic, 1)[0] == 20, what="the batch committed")
    assert sorted(handler.written) == list(range(20)), "every message written once, none twice"


def test_a_commit_interval_commits_less_often_and_still_commits_finished_work_when_idle(topic_factory):
    """Batches of one message, committed at most every 2 s: fewer commits than batches, and
    once the topic goes quiet the last finished message is committed without a new batch."""
    topic = topic_factory()
    handler = Recorder()
    runner = Runner(definition(topic, handler, dlq=None, max_batch_size=1, commit_interval_ms=2000))
    with Running(runner):
        produce(topic, [{"n": n} for n in range(30)])
        wait_until(lambda: len(handler.numbers()) == 30, what="all 30 handled")
        wait_until(lambda: committed(runner.group_id, topic, 1)[0] == 30, what="the last offset committed while idle")
        assert runner.stats.batches == 30
        assert runner.stats.commits < 10, f"{runner.stats.commits} commits for 30 batches"


def test_a_second_consumer_joining_splits_the_partitions_and_nothing_is_lost(topic_factory):
    topic = topic_factory(partitions=4)
    group = unique("group")
    first, second = Recorder(), Recorder()

    def runner_for(handler):
        return Runner(
            ConsumerDefinition(name="split", topics=(topic,), group_id=group, handler_factory=lambda: handler,
                               dlq_topic=None, max_batch_size=50),
        )

    produce(topic, [{"n": n} for n in range(400)], key=lambda i: str(i).encode())
    a = runner_for(first)
    with Running(a):
        wait_until(lambda: len(a.stats.assigned) == 4, what="the first consumer owning all partitions")
        b = runner_for(second)
        with Running(b):
            wait_until(lambda: a.stats.assigned and b.stats.assigned and len(a.stats.assigned | b.stats.assigned) == 4,
                       timeout=60, what="the partitions split between two consumers")
            assert not (a.stats.assigned & b.stats.assigned), "no partition owned twice"
            produce(topic, [{"n": n} for n in range(400, 800)], key=lambda i: str(i).encode())
            wait_until(lambda: set(first.numbers()) | set(second.numbers()) >= set(range(800)),
                       timeout=60, what="all 800 messages handled")
            assert second.numbers(), "the second consumer took a share"
            wait_until(lambda: sum(committed(group, topic, 4).values()) == 800, what="every offset committed")


class BatchRecorder(Recorder):
    """The same, as a batch handler (like the projection): returns its rejects."""

    def handle_batch(self, messages: list[Message]) -> list:
        rejected = []
        for message in messages:
            try:
                self.handle(message)
            except NonRetriableError as exc:
                rejected.append((message, exc))
        return rejected


def test_a_batch_handler_counts_rejects_in_message_order(topic_factory):
    """One invalid message in ten, all in one batch, is 10%: no limit breaks (counting all of a
    batch's rejects as 'in a row' stopped this consumer with '101 invalid messages in a row')."""
    topic, dlq = topic_factory(), topic_factory(prefix="dlq")
    produce(topic, [{"n": n, "poison": n % 10 == 9} for n in range(1010)])
    handler = BatchRecorder()
    runner = Runner(definition(topic, handler, dlq=dlq, max_batch_size=2000, max_batch_time_ms=2000))
    with Running(runner) as running:
        wait_until(lambda: committed(runner.group_id, topic, 1)[0] == 1010, what="the whole topic committed")
    assert running.error is None
    assert len(handler.handled) == 909
    assert len(consume_all(dlq, 101)) == 101


def test_a_batch_that_breaks_the_dlq_limit_is_committed_up_to_the_break_so_a_restart_moves_on(topic_factory):
    topic, dlq = topic_factory(), topic_factory(prefix="dlq")
    produce(topic, [{"n": n, "poison": True} for n in range(10)])
    group = unique("group")

    def run_once():
        runner = Runner(ConsumerDefinition(
            name=unique("c"), topics=(topic,), group_id=group, handler_factory=BatchRecorder, dlq_topic=dlq,
            decoder=decode_json, dlq_limit=DlqLimit(max_consecutive=3, max_ratio=None), max_batch_time_ms=1000))
        running = Running(runner).__enter__()
        running.join()
        return running.error

    assert isinstance(run_once(), DlqLimitExceededError)
    assert committed(group, topic, 1)[0] == 3, "the three dead-lettered before the break are committed"
    assert isinstance(run_once(), DlqLimitExceededError)
    assert committed(group, topic, 1)[0] == 6, "a restart goes on from the break, not the same batch"
    assert len(consume_to_end(dlq)) == 6


class Flaky:
    """Fails the messages named in `fail` that many times each (an SMTP server refusing), then
    handles them; records when each attempt of each message came."""

    def __init__(self, fail: dict[int, int]):
        self.fail = dict(fail)
        self.attempts: dict[int, list[float]] = {}
        self.handled: list[int] = []
        self.lock = threading.Lock()

    def handle(self, message: Message) -> None:
        n = message.payload["n"]
        with self.lock:
            self.attempts.setdefault(n, []).append(time.time())
            if self.fail.get(n, 0) > 0:
                self.fail[n] -= 1
                raise OSError(f"mail server refused #{n}")
            self.handled.append(n)


def retrying(topic_factory, delays):
    """A topic with its retry topics, and a DLQ; deleted by topic_factory's cleanup."""
    topic, dlq = topic_factory(), topic_factory(prefix="dlq")
    for level in range(1, len(delays) + 1):
        create_topic(retry_topic(topic, level))
    return topic, dlq


def test_a_failed_message_is_retried_from_retry_topics_without_holding_up_the_partition(topic_factory):
    delays = (0.5, 1.0)
    topic, dlq = retrying(topic_factory, delays)
    try:
        produce(topic, [{"n": n} for n in range(10)])
        handler = Flaky({3: 2})  # refused twice: handled on its third attempt, from topic-retry-2
        runner = Runner(definition(topic, handler, dlq=dlq, retry=RetryPolicy(delays_s=delays, jitter=0.0)))
        with Running(runner):
            wait_until(lambda: len(handler.handled) == 10, what="every message, the refused one last")
            wait_until(lambda: committed(runner.group_id, topic, 1)[0] == 10, what="the topic committed")
            wait_until(lambda: committed(runner.group_id, retry_topic(topic, 2), 1)[0] == 1, what="retry-2 committed")
        assert handler.handled == [0, 1, 2, 4, 5, 6, 7, 8, 9, 3], "the others did not wait for it"
        first, second, third = handler.attempts[3]
        assert second - first >= delays[0] and third - second >= delays[1], "never before its time"
        assert consume_to_end(dlq) == []
        [retried] = consume_to_end(retry_topic(topic, 1))
        headers = dict(retried.headers())
        assert (headers["retry.attempts"], headers["retry.original.offset"]) == (b"1", b"3")
        assert headers["retry.error.class"] == b"OSError"
    finally:
        delete_topics(retry_topic(topic, level) for level in range(1, len(delays) + 1))


def test_a_message_that_fails_every_attempt_lands_in_the_dlq_naming_its_origin_and_attempts(topic_factory):
    delays = (0.2, 0.2)
    topic, dlq = retrying(topic_factory, delays)
    try:
        produce(topic, [{"n": n} for n in range(3)], headers=[("correlationId", b"corr-9")])
        handler = Flaky({1: 100})
        runner = Runner(definition(topic, handler, dlq=dlq, retry=RetryPolicy(delays_s=delays, jitter=0.0)))
        with Running(runner):
            [parked] = wait_until(lambda: consume_to_end(dlq), what="the dead letter")
            wait_until(lambda: committed(runner.group_id, retry_topic(topic, 2), 1)[0] == 1, what="retry-2 committed")
        headers = {key: value.decode() for key, value in parked.headers()}
        assert (headers["dlq.original.topic"], headers["dlq.original.offset"]) == (topic, "1")
        assert (headers["dlq.attempts"], headers["dlq.error.class"]) == ("3", "OSError")
        assert headers["correlationId"] == "corr-9"
        assert len(handler.attempts[1]) == 3 and handler.handled == [0, 2]
    finally:
        delete_topics(retry_topic(topic, level) for level in range(1, len(delays) + 1))
