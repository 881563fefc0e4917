"""Runner overhead: messages/s through the runconsumer loop with a no-op handler, against a
bare confluent-kafka consume loop over the same topic, and against sentry-arroyo (the library
the runner's design follows) doing the same no-op work, alternated in one run.

The bare loop does the least a real consumer does: consume batches, skip errors, hand each
message's value to a function. Like the runner, it commits (asynchronously) after every batch.
Arroyo runs its StreamProcessor with a RunTask step (the no-op function) and CommitOffsets, at
its default commit policy (once a second), as its docs build a consumer.

The runner runs twice a round: without its line per event handled (LOG_EVENTS=0), and with it,
written to a file as a supervisor's log would be (polystack/logs.py): what that line costs.
Messages carry the relay's headers (eventType, eventId, correlationId), which the line reads.
Its target, 0.3 of the no-op loop, is about 3 µs a line: a tenth of the lightest real
handler's work per event (the projection's).
"""
import logging
import tempfile
import time
import uuid

from confluent_kafka import Consumer
from django.conf import settings

from bench.common import fill, median, report, report_paired_ratio, scratch_topic
from polystack import logs
from polystack.streaming import kafka
from polystack.streaming.registry import ConsumerDefinition, decode_bytes
from polystack.streaming.runner import Runner, RunnerOptions

MESSAGES = 300_000
ROUNDS = 5
BATCH = 500
PAYLOAD = b'{"eventType":"TodoCreated","data":{"title":"benchmark message","description":"' + b"x" * 120 + b'"}}'
HEADERS = [("eventType", b"TodoCreated"), ("eventId", str(uuid.uuid4()).encode()),
           ("correlationId", str(uuid.uuid4()).encode())]


def bare_loop(topic: str) -> float:
    consumer = Consumer(kafka.base_config(**{
        "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest", "enable.auto.commit": False,
    }))
    consumer.subscribe([topic])
    seen, started = 0, None

    def handle(value):  # the same no-op work as the runner's handler
        pass

    while seen < MESSAGES:
        batch = consumer.consume(num_messages=BATCH, timeout=0.2)
        if batch and started is None:
            started = time.perf_counter()
        for message in batch:
            if message.error() is None:
                handle(message.value())
                seen += 1
        consumer.commit(asynchronous=True)  # at-least-once: the position after the batch
    elapsed = time.perf_counter() - started
    consumer.close()
    return MESSAGES / elapsed


def runner_loop(topic: str, event_lines: bool = False) -> float:
    """The runner, with or without its line per event (to a file, as a supervisor keeps logs)."""
    events = logs.EVENTS
    level, propagate, handlers = events.level, events.propagate, list(events.handlers)
    sink = tempfile.NamedTemporaryFile("w", prefix="bench-events-", suffix=".log")
    handler = logging.FileHandler(sink.name)
    handler.setFormatter(logging.Formatter("%(message)s"))  # as settings.LOGGING's "events" handler
    events.setLevel(logging.INFO if event_lines else logging.WARNING)
    events.propagate = False
    events.handlers = [handler]
    try:
        return _runner_loop(topic)
    finally:
        events.setLevel(level)
        events.propagate = propagate
        events.handlers = handlers
        handler.close()
        sink.close()


def _runner_loop(topic: str) -> float:
    class NoOp:
        """The same no-op work as the bare loop's handler; the clock is read once a batch."""

        started = finished = None

        @staticmethod
        def handle(message):
            pass

        def flush(self):
            now = time.perf_counter()
            if self.started is None:
                self.started = now  # after the first batch: 1/600 of the run in the runner's favour
            if runner.stats.consumed >= MESSAGES:
                self.finished = now
                runner.stop()

    handler = NoOp()
    definition = ConsumerDefinition(
        name="bench-noop", topics=(topic.removeprefix(settings.KAFKA_TOPIC_PREFIX),),
        group_id=f"bench-runner-{uuid.uuid4().hex[:8]}",
        handler_factory=lambda: handler, dlq_topic=None, decoder=decode_bytes,
        max_batch_size=BATCH, max_batch_time_ms=200,
    )
    runner = Runner(definition, RunnerOptions())
    runner.run()
    return MESSAGES / (handler.finished - handler.started)


def arroyo_loop(topic: str) -> float:
    from arroyo import Topic
    from arroyo.backends.kafka import KafkaConsumer, build_kafka_consumer_configuration
    from arroyo.commit import ONCE_PER_SECOND
    from arroyo.processing import StreamProcessor
    from arroyo.processing.strategies import CommitOffsets, ProcessingStrategyFactory, RunTask

    clock = {"seen": 0, "started": None, "finished": None}

    def handle(message):  # the same no-op work, and the count that ends the round
        clock["seen"] += 1
        if clock["started"] is None:
            clock["started"] = time.perf_counter()
        elif clock["seen"] == MESSAGES:
            clock["finished"] = time.perf_counter()
            processor.signal_shutdown()
        return message.payload

    class NoOp(ProcessingStrategyFactory):
        def create_with_partitions(self, commit, partitions):
            return RunTask(handle, CommitOffsets(commit))

    consumer = KafkaConsumer(build_kafka_consumer_configuration(
        kafka.base_config(), group_id=f"bench-arroyo-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest"))
    processor = StreamProcessor(consumer, Topic(topic), NoOp(), ONCE_PER_SECOND)
    processor.run()
    return MESSAGES / (clock["finished"] - clock["started"])


def run() -> None:
    with scratch_topic(partitions=6) as topic:
        print(f"  filling {topic} with {MESSAGES:,} messages of {len(PAYLOAD)} bytes ...", flush=True)
        fill(topic, MESSAGES, PAYLOAD, headers=HEADERS)
        bare, ours, logged, arroyo = [], [], [], []
        for _ in range(ROUNDS):  # alternate, so that machine noise hits all alike
            bare.append(bare_loop(topic))
            ours.append(runner_loop(topic))
            logged.append(runner_loop(topic, event_lines=True))
            arroyo.append(arroyo_loop(topic))
        report("bare confluent-kafka consume loop (median)", median(bare), "msg/s")
        report("runconsumer loop, no-op handler, commits (median)", median(ours), "msg/s")
        report("the same, a log line per event, to a file (median)", median(logged), "msg/s")
        report("sentry-arroyo StreamProcessor, RunTask no-op (median)", median(arroyo), "msg/s")
        report_paired_ratio("ratio runner / bare", ours, bare, 0.7)
        report_paired_ratio("ratio runner / arroyo", ours, arroyo, 1.0)
        report_paired_ratio("ratio runner with event lines / without", logged, ours, 0.3)
