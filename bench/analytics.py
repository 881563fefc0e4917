"""Analytics: the stream processor on a backfill, and the live lag from a command to the API.

1. Backfill: BENCH_ANALYTICS_EVENTS (default 1,000,000) todo events of 5,000 users over 60
   days, in time order, on todo-events' six partitions. Events/s through the whole processor
   (decode, facts, four windows, exactly-once transactions with the state store's changelog),
   run as its role runs (`runconsumer analytics`), from its first committed transaction to
   the group's committed end; against a Quix Streams application that only
   reads and decodes the same events (at-least-once: the fastest raw way). Target ≥ 10,000/s.
2. The same four windows built with Quix Streams' own windows and state stores, on a sample
   (BENCH_ANALYTICS_QUIX_SAMPLE, default 20,000 events): why the processor is not a Quix app.
3. Live: todos completed through the API at 100 commands/s by 20 users, with the web role,
   relay, processor and sink running; for each, the time until GET /api/analytics/completed/
   counts it (polled every 50 ms). p50 and p99; target p99 < 2 s.
"""
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, Producer, TopicPartition
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from bench.common import free_port, rate_from_first_commit, report, start_role, stop_roles, wait_http
from polystack.streaming import kafka, topics
from polystack.streaming.topics import resolve

EVENTS = int(os.environ.get("BENCH_ANALYTICS_EVENTS", "1000000"))
QUIX_SAMPLE = int(os.environ.get("BENCH_ANALYTICS_QUIX_SAMPLE", "20000"))
USERS = 5000
LIVE_USERS = 20
LIVE_RATE = 100  # commands per second
LIVE_SECONDS = 20


def _events(count: int, seed: int) -> list[bytes]:
    from tests.analytics.synthetic import activity

    end = datetime.now(UTC) - timedelta(days=1)
    envelopes = activity(users=list(range(10_000, 10_000 + USERS)), count=count, start=end - timedelta(days=60),
                         span=timedelta(days=60), seed=seed)
    return [(e["userId"].encode(), json.dumps(e).encode()) for e in envelopes]


def _publish(topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(kafka.base_config(**{"linger.ms": 50, "batch.size": 1_000_000, "compression.type": "lz4",
                                             "queue.buffering.max.messages": 2_000_000}))
    for key, value in messages:
        kafka.produce(producer, topic, key=key, value=value)
    assert producer.flush(120) == 0


def _ends(topic: str) -> dict[int, int]:
    consumer = Consumer(kafka.base_config(**{"group.id": "bench-ends"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def processor_rate(topic: str, count: int) -> float:
    """The analytics role as it runs (`runconsumer analytics`, its own process, a fresh group
    and state), from its first committed transaction to its committed end: events/s over what
    it committed in between, so its start-up and group join are not counted."""
    ends = _ends(topic)
    group = f"bench-analytics-{uuid.uuid4().hex[:6]}"
    role = start_role("analytics-backfill", "manage.py", "runconsumer", "analytics", "--group-id", group,
                      "--auto-offset-reset", "earliest", "--state-dir", tempfile.mkdtemp(prefix="bench-analytics-"))
    rate, timed = rate_from_first_commit(role, name="analytics-backfill", group=group, topic=topic, ends=ends)
    print(f"  processor: timed over the last {timed:,} of {count:,} events", flush=True)
    return rate


def quix_rate(topic: str, count: int, *, full_topology: bool) -> float:
    """A Quix Streams application on the same events: only reading and decoding them, or (on a
    sample) the four windows with Quix's own windows and RocksDB state (bench.analytics_quix)."""
    from bench.analytics_quix import application

    seen = {"n": 0, "first": 0.0, "last": 0.0}

    def processed(topic_name, partition, offset):
        seen["n"] += 1
        now = time.perf_counter()
        seen["first"] = seen["first"] or now
        seen["last"] = now
        if seen["n"] >= count:
            app.stop()

    app = application(topic, on_message_processed=processed, full_topology=full_topology,
                      state_dir=tempfile.mkdtemp(prefix="bench-quix-"))
    try:
        app.run()
    finally:  # Quix named its changelog topics after the group
        from tests import helpers

        group = app.config.consumer_group
        helpers.delete_topics([name for name in kafka.admin_client().list_topics(timeout=10).topics if group in name])
    return seen["n"] / (seen["last"] - seen["first"])


def stream_lag(samples: int = 40) -> list[float]:
    """ms from an event appended to todo-events to its window row in PostgreSQL: the processor
    and the sink alone (one event at a time, 5 per second), without the web role."""
    import random

    from tests.analytics.synthetic import Timeline

    owner = 990_000 + random.randrange(9_000)
    line = Timeline(users=[owner], rng=random.Random(owner))
    producer = Producer(kafka.producer_config(**{"linger.ms": 0}))
    lags = []
    for n in range(samples + 3):  # the first three warm up (a partition to create, groups to settle)
        envelope = line.create(owner, datetime.now(UTC), priority="high")
        started = time.perf_counter()
        kafka.produce(producer, resolve(topics.TODO_EVENTS), key=str(owner).encode(), value=json.dumps(envelope).encode())
        producer.flush(10)
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT coalesce(sum(value), 0) FROM analytics_window WHERE owner_id = %s "
                               "AND window_name = 'hourly' AND metric = 'created'", [owner])
                if cursor.fetchone()[0] > n:
                    break
            if time.perf_counter() - started > 30:
                raise RuntimeError("an event did not reach analytics_window in 30 s")
        lags.append((time.perf_counter() - started) * 1000)
        time.sleep(0.2)
    return sorted(lags[3:])


def live_lag() -> tuple[float, float, int, list[float]]:
    """p50 and p99 (ms) from a completion command to the API counting it, and how many; and
    the stream's own part (stream_lag)."""
    people = [get_user_model().objects.get_or_create(username=f"bench-live-{n}")[0] for n in range(LIVE_USERS)]
    watcher, _ = get_user_model().objects.get_or_create(username="bench-live-staff", defaults={"is_staff": True})
    tokens = [Token.objects.get_or_create(user=user)[0].key for user in people]
    staff_token = Token.objects.get_or_create(user=watcher)[0].key
    connection.close()
    port = free_port()
    group = uuid.uuid4().hex[:6]
    processes = [
        start_role("web", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "apps.web.asgi:application"),
        start_role("relay", "manage.py", "runrelay"),
        start_role("projections", "manage.py", "runconsumer", "projections", "--group-id", f"bench-p-{group}"),
        start_role("analytics", "manage.py", "runconsumer", "analytics", "--group-id", f"bench-a-{group}",
                   "--state-dir", tempfile.mkdtemp(prefix="bench-live-")),
        start_role("analytics-sink", "manage.py", "runconsumer", "analytics-sink", "--group-id", f"bench-s-{group}"),
    ]
    try:
        wait_http(port)
        stream = stream_lag()
        connection.close()

        def call(method: str, path: str, token: str, body: dict | None = None) -> dict:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
            answer = conn.getresponse()
            data = answer.read()
            assert answer.status < 300, (answer.status, data[:200])
            return json.loads(data) if data else {}

        since = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def completed() -> int:
            answer = call("GET", f"/api/analytics/completed/?scope=all&bucket=hour&from={since}", staff_token)
            return sum(p["value"] for p in answer["series"][0]["points"])

        total = LIVE_RATE * LIVE_SECONDS
        todos = [(tokens[i % LIVE_USERS], call("POST", "/api/todos/", tokens[i % LIVE_USERS],
                                               {"title": f"live {i}"})["id"]) for i in range(total)]
        base = completed()
        seen: dict[int, float] = {}
        api_times: list[float] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                asked = time.perf_counter()
                count = completed() - base
                now = time.perf_counter()
                api_times.append(now - asked)
                for i in range(len(seen), min(count, total)):
                    seen[i] = now
                if len(seen) >= total:
                    return
                time.sleep(0.05)

        watcher_thread = threading.Thread(target=watch)
        watcher_thread.start()
        # Commands wait for their projection (read-your-writes): one client in turn could not
        # keep 100/s, so several send, each command at its own moment of the schedule.
        start = time.perf_counter() + 0.5
        sent = [0.0] * total
        queue = iter(range(total))
        lock = threading.Lock()

        def sender() -> None:
            while True:
                with lock:
                    i = next(queue, None)
                if i is None:
                    return
                pause = start + i / LIVE_RATE - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                sent[i] = time.perf_counter()
                token, todo_id = todos[i]
                call("POST", f"/api/todos/{todo_id}/complete/", token)

        senders = [threading.Thread(target=sender) for _ in range(16)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        watcher_thread.join(timeout=60)
        done.set()
    finally:
        stop_roles(processes)
    # The i-th completion counted: the count reached i + 1 (completions are counted in any order,
    # so this is the time until as many as were sent by then were visible).
    lags = sorted((seen[i] - sent[i]) * 1000 for i in seen)
    api_times.sort()
    print(f"  {'  of which the API call itself (web role under load)':<52} p50 "
          f"{api_times[len(api_times) // 2] * 1000:,.0f} ms, p99 {api_times[int(len(api_times) * 0.99)] * 1000:,.0f} ms",
          flush=True)
    return statistics.median(lags), lags[int(len(lags) * 0.99)], len(lags), stream


def run() -> None:
    topic = resolve(topics.TODO_EVENTS)
    print(f"  generating {EVENTS:,} events of {USERS:,} users ...", flush=True)
    messages = _events(EVENTS, seed=1)
    _publish(topic, messages)
    quix = quix_rate(topic, EVENTS, full_topology=False)
    report("Quix app reading and decoding (at-least-once)", quix, "events/s")
    ours = processor_rate(topic, EVENTS)
    report("analytics processor, four windows, exactly once", ours, "events/s")
    verdict = "meets" if ours >= 10_000 else "BELOW"
    print(f"  {'target':<52} {'>= 10,000 events/s':>12}   ({verdict})", flush=True)
    print(f"  {'ratio processor / Quix read-and-decode':<52} {ours / quix:>12.2f}", flush=True)

    sample = resolve(f"quix-sample-{uuid.uuid4().hex[:6]}")
    from tests import helpers

    helpers.create_topic(sample, 6)
    try:
        _publish(sample, messages[:QUIX_SAMPLE])
        quix_windows = quix_rate(sample, QUIX_SAMPLE, full_topology=True)
        report(f"Quix windows and state, same four windows ({QUIX_SAMPLE:,} events)", quix_windows, "events/s")
    finally:
        helpers.delete_topics([sample])

    # Live on topics of its own: todo-events above holds the backfill, which new groups would
    # read first. Under the run's prefix, so the run's cleanup drops them too.
    from django.conf import settings
    from django.core.management import call_command

    prefix = settings.KAFKA_TOPIC_PREFIX
    settings.KAFKA_TOPIC_PREFIX = os.environ["KAFKA_TOPIC_PREFIX"] = prefix + "live."
    try:
        call_command("ensuretopics", stdout=open(os.devnull, "w"))
        p50, p99, count, stream = live_lag()
    finally:
        settings.KAFKA_TOPIC_PREFIX = os.environ["KAFKA_TOPIC_PREFIX"] = prefix
    print(f"  {'live: completion command -> counted by the API':<52} p50 {p50:,.0f} ms, p99 {p99:,.0f} ms "
          f"({count} commands at {LIVE_RATE}/s; target p99 < 2,000 ms: {'meets' if p99 < 2000 else 'BELOW'})",
          flush=True)
    print(f"  {'stream alone: todo-events -> analytics_window row':<52} p50 {statistics.median(stream):,.0f} ms, "
          f"p99 {stream[int(len(stream) * 0.99)]:,.0f} ms ({len(stream)} events, one at a time)", flush=True)
