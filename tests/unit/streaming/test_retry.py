"""Retry topics' decisions (polystack.streaming.retry), on fabricated messages: where a failure
goes next, and what a hostile header can and cannot do."""
import time

import pytest

from polystack.streaming.retry import NOT_BEFORE, RetryPolicy, RetryTopics


class Raw:
    """A confluent-kafka message as far as RetryTopics reads one."""

    def __init__(self, topic, offset=0, headers=(), partition=0):
        self._topic, self._offset, self._headers, self._partition = topic, offset, list(headers), partition

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def headers(self):
        return self._headers

    def error(self):
        return None


class View(Raw):
    """The handler's view (registry.Message) as far as next_step reads one."""

    topic = property(Raw.topic)
    partition = property(Raw.partition)
    offset = property(Raw.offset)
    headers = property(Raw.headers)

    def header(self, name):
        return next((value.decode() for key, value in self._headers if key == name), None)


class Consumer:
    def __init__(self):
        self.paused, self.sought, self.resumed = [], [], []

    def pause(self, partitions):
        self.paused += [(p.topic, p.partition) for p in partitions]

    def seek(self, partition):
        self.sought.append((partition.topic, partition.partition, partition.offset))

    def resume(self, partitions):
        self.resumed += [(p.topic, p.partition) for p in partitions]


@pytest.fixture
def retries(settings):
    settings.KAFKA_TOPIC_PREFIX = ""
    return RetryTopics(RetryPolicy(delays_s=(2, 10, 60), jitter=0.0), ["orders"])


def test_a_failure_walks_the_retry_topics_then_goes_to_the_dlq_with_where_it_came_from(retries):
    step = retries.next_step(View("orders", offset=41, headers=[("correlationId", b"c-1")]), OSError("refused"),
                             group_id="g")
    assert (step.topic, step.attempts, step.origin) == ("orders-retry-1", 1, ("orders", 0, 41))
    headers = dict(step.headers)
    assert headers["correlationId"] == b"c-1" and headers["retry.attempts"] == b"1"
    assert 1900 <= int(headers[NOT_BEFORE]) - time.time() * 1000 <= 2000
    for level, expected in ((1, "orders-retry-2"), (2, "orders-retry-3")):
        step = retries.next_step(View(f"orders-retry-{level}", offset=7, headers=step.headers), OSError(), group_id="g")
        assert (step.topic, step.attempts, step.origin) == (expected, level + 1, ("orders", 0, 41))
        assert [key for key, _ in step.headers].count(NOT_BEFORE) == 1, "its own headers replaced, not piled up"
    last = retries.next_step(View("orders-retry-3", offset=9, headers=step.headers), OSError(), group_id="g")
    assert (last.topic, last.attempts, last.origin) == (None, 4, ("orders", 0, 41))


@pytest.mark.parametrize("origin", [[], [("retry.original.topic", b"payments"), ("retry.original.partition", b"0"),
                                         ("retry.original.offset", b"3")],
                                    [("retry.original.topic", b"orders"), ("retry.original.partition", b"x"),
                                     ("retry.original.offset", b"3")],
                                    [("retry.original.topic", b"orders"), ("retry.original.partition", b"0"),
                                     ("retry.original.offset", b"-1")]])
def test_the_level_comes_from_the_topic_and_a_bad_origin_header_is_not_believed(retries, origin):
    headers = [("retry.attempts", b"99"), *origin]
    step = retries.next_step(View("orders-retry-1", offset=5, headers=headers), OSError(), group_id="g")
    assert (step.topic, step.attempts) == ("orders-retry-2", 2), "the topic says the level, not the header"
    assert step.origin == ("orders-retry-1", 0, 5), "an origin elsewhere, or no number, is not taken"


def test_messages_not_due_pause_their_partition_and_the_rest_goes_on(retries):
    consumer = Consumer()
    soon = str(time.time() * 1000 + 1500).encode()
    batch = [Raw("orders", 1), Raw("orders-retry-1", 3, [(NOT_BEFORE, soon)]), Raw("orders-retry-1", 4),
             Raw("orders", 2), Raw("orders-retry-2", 8, [(NOT_BEFORE, b"0")])]
    kept, held = retries.hold(consumer, batch)
    assert [(raw.topic(), raw.offset()) for raw in kept] == [("orders", 1), ("orders", 2), ("orders-retry-2", 8)]
    assert held == {("orders-retry-1", 0): 3}
    assert consumer.paused == [("orders-retry-1", 0)] and consumer.sought == [("orders-retry-1", 0, 3)]
    assert 1 < retries.next_resume_in() <= 1.5
    retries.resume_due(consumer)
    assert consumer.resumed == [], "not yet"


@pytest.mark.parametrize("header", [b"99999999999999999", b"inf", b"nan", b"soon", None])
def test_a_hostile_not_before_cannot_park_a_partition_past_its_levels_delay(retries, header):
    consumer = Consumer()
    headers = [] if header is None else [(NOT_BEFORE, header)]
    kept, held = retries.hold(consumer, [Raw("orders-retry-1", 0, headers)])
    assert kept or retries.next_resume_in() <= 2.0, "at most the level's delay (2 s)"


def test_policies_are_checked_and_exponential_ones_are_spelled_out():
    assert RetryPolicy.exponential(first_s=2, factor=5, retries=3).delays_s == (2.0, 10.0, 50.0)
    assert RetryPolicy(delays_s=(1, 2)).max_attempts == 3
    for bad in ({"delays_s": ()}, {"delays_s": (0,)}, {"delays_s": (1,), "jitter": 1.0}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)
