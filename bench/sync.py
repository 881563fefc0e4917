"""Sync: the coordinator's price for exactly once, and a device catching up.

- Coordinator: todo-events (EVENTS events of users in teams: about three records each) through
  `runconsumer sync` as it runs (its own process, a fresh group and state), timed from its first
  committed transaction to its committed end, at several transaction sizes (--max-batch-size):
  the curve the default is chosen from. Against the same loop at-least-once, in this process:
  the same handler and state store, its records and changelog produced by an idempotent
  producer, flushed, then the offsets committed (what Kafka Streams' at_least_once does).
  Rounds alternate the two. Target: exactly once / at least once >= 0.6.
- Catch-up: a device that missed CATCHUP records reconnects to /ws/sync/ (daphne, its own
  process) and reads from its hello to `ready`: p50/p99 over ROUNDS reconnects.
- Mutation round trip, with the whole path running as processes (web, relay, coordinator,
  sink): a device pushes one edit and times its answer (`pushed`: applied in the database), its
  own record coming back, and the record reaching the user's other device; ROUND_TRIPS of them
  while WRITERS devices of other users push edits as fast as they are answered (concurrent
  writers). The baseline of the answer is the same command called in this process
  (apps.todos.services.todo_update): what the socket, the mutation bookkeeping and the merge add.
"""
import json
import os
from contextlib import contextmanager
import random
import statistics
import tempfile
import time
import uuid

from confluent_kafka import Consumer, Producer
from django.contrib.auth import get_user_model

from apps.sync.coordinator import SyncCoordinator
from apps.sync.models import Device
from bench.common import (ROOT, free_port, percentile_ms, rate_from_first_commit, report, report_paired_ratio, start_role,
                          stop_roles, wait_http)
from polystack.gcpolicy import collector_paused
from polystack.streaming import kafka, topics
from polystack.streaming.registry import Message, decode_json
from polystack.streaming.state import PartitionStore
from polystack.streaming.topics import resolve
from polystack.streaming.transactional import Batch
from tests.projections.synthetic import publish
from tests.sync.synthetic import Todos, store_records

EVENTS = 50_000
ROUNDS = 3
BATCH_SIZES = (10, 100, 500, 2000, 5000)
CATCHUP = 10_000
CATCHUP_ROUNDS = 20
ROUND_TRIPS = 200
WARM_UP = 5
WRITERS = 4


def _events() -> list[dict]:
    stream = Todos(users=list(range(1, 301)), team=list(range(1, 4)), rng=random.Random(5))
    return [stream.event() for _ in range(EVENTS)]


def _ends(topic: str) -> dict[int, int]:
    consumer = Consumer(kafka.base_config(**{"group.id": "bench-ends", "enable.auto.commit": False}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: kafka.high_watermark(consumer, topic, p) for p in partitions}
    finally:
        consumer.close()


def exactly_once_rate(topic: str, batch_size: int) -> float:
    """`runconsumer sync` over the whole topic: events/s from its first committed transaction."""
    ends = _ends(topic)
    group = f"bench-sync-{uuid.uuid4().hex[:6]}"
    role = start_role("sync-coordinator", "manage.py", "runconsumer", "sync", "--group-id", group,
                      "--max-batch-size", str(batch_size), "--state-dir", tempfile.mkdtemp(prefix="bench-sync-"))
    return rate_from_first_commit(role, name="sync-coordinator", group=group, topic=topic, ends=ends)[0]


def at_least_once_rate(topic: str, batch_size: int, changelog: str) -> float:
    """The same handler and state store without transactions: produce the records and the
    store's changelog, flush, commit the offsets."""
    ends = _ends(topic)
    consumer = Consumer(kafka.base_config(**{"group.id": f"bench-alo-{uuid.uuid4().hex[:6]}",
                                             "enable.auto.commit": False, "auto.offset.reset": "earliest"}))
    producer = Producer(kafka.producer_config(**{"linger.ms": 5}))
    handler = SyncCoordinator()
    stores = {p: PartitionStore(changelog=changelog, partition=p, path=None) for p in ends}
    consumer.subscribe([topic])
    left, first, handled = sum(ends.values()), None, 0
    try:
        while left > 0:
            raw = [m for m in consumer.consume(batch_size, timeout=1.0) if not m.error()]
            if not raw:
                continue
            first = first or time.perf_counter()
            with collector_paused():  # as the runner handles a batch (polystack.gcpolicy)
                batch = Batch(messages=[Message(m, decode_json(m.value())) for m in raw], stores=stores)
                handler.process(batch)
            produce = producer.produce  # as the transactional runner produces its batches
            for out_topic, key, value, _ in batch.outputs:
                try:
                    produce(out_topic, value, key)
                except BufferError:
                    kafka.produce(producer, out_topic, key=key, value=value)
            changes = {p: store.changes() for p, store in stores.items()}
            for p, records in changes.items():
                for key, value in records:
                    try:
                        produce(changelog, value, key, partition=p)
                    except BufferError:
                        kafka.produce(producer, changelog, key=key, value=value, partition=p)
            assert producer.flush(60) == 0
            for p, store in stores.items():
                store.committed(changes[p], None)
            consumer.commit(asynchronous=False)
            handled += len(raw)
            left -= len(raw)
    finally:
        consumer.close()
    return handled / (time.perf_counter() - first)


def at_least_once_in_a_process(topic: str, batch_size: int, changelog: str) -> float:
    """at_least_once_rate in a fresh process of its own, as the role runs in one."""
    role = start_role("sync-at-least-once", "-c", "import django, sys; django.setup(); from bench.sync import "
                      "at_least_once_rate; print(at_least_once_rate(*sys.argv[1:2], int(sys.argv[2]), sys.argv[3]))",
                      topic, str(batch_size), changelog)
    if role.wait(600) != 0:
        raise RuntimeError("the at-least-once loop failed: bench/results/sync-at-least-once.log")
    with open(os.path.join(ROOT, "bench", "results", "sync-at-least-once.log")) as log:
        return float(log.read().split()[-1])


def catch_up() -> list[float]:
    """Seconds from a device's hello to `ready`, having missed CATCHUP records, per reconnect."""
    from websockets.sync.client import connect

    user = get_user_model().objects.get_or_create(username="bench-sync")[0]
    from rest_framework.authtoken.models import Token

    token = Token.objects.get_or_create(user=user)[0].key
    # CATCHUP records of the user, stored as the sink stores them (positions of a partition of its own).
    store_records(user.pk, CATCHUP, first_offset=1_000_000, seed=9)
    device = Device.objects.create(user=user, name="bench", platform="cli", epoch=0, acked_partition=0)
    port = free_port()
    web = start_role("sync-web", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "apps.web.asgi:application")
    took = []
    try:
        wait_http(port)
        for _ in range(CATCHUP_ROUNDS):
            started = time.perf_counter()
            with connect(f"ws://127.0.0.1:{port}/ws/sync/?token={token}", max_size=None) as ws:
                ws.send(json.dumps({"type": "hello", "deviceId": str(device.id), "lastOffset": 999_999}))
                got = 0
                while True:
                    frame = ws.recv()
                    if frame.startswith('{"type": "ready"'):
                        break
                    got += 1
            took.append(time.perf_counter() - started)
            assert got == CATCHUP, f"{got} records, not {CATCHUP}"
    finally:
        stop_roles([web])
    return sorted(took)


def run() -> None:
    from bench.common import scratch_topic

    topic = resolve(topics.TODO_EVENTS)
    print(f"  generating {EVENTS:,} events of 300 users (3 in a team) ...", flush=True)
    events = _events()
    publish(topic, events)
    records = sum(len(e["metadata"]["affectedUsers"]) for e in events)
    print(f"  {EVENTS:,} events -> {records:,} device-sync records", flush=True)
    print("  transaction size (events per transaction) -> exactly once, events/s:", flush=True)
    curve = {}
    for size in BATCH_SIZES:
        curve[size] = exactly_once_rate(topic, size)
        report(f"    --max-batch-size {size}", curve[size], "events/s")
    best = max(curve, key=curve.get)
    ours, theirs = [], []
    with scratch_topic(6) as changelog:
        for _ in range(ROUNDS):
            theirs.append(at_least_once_in_a_process(topic, best, changelog))
            ours.append(exactly_once_rate(topic, best))
    report(f"at least once, batches of {best} (median of {ROUNDS})", statistics.median(theirs), "events/s")
    report(f"exactly once, transactions of {best} (median of {ROUNDS})", statistics.median(ours), "events/s")
    report_paired_ratio("exactly once / at least once", ours, theirs, 0.6)

    took = catch_up()
    print(f"  {'device catching up ' + format(CATCHUP, ',') + ' missed records':<52} "
          f"p50 {percentile_ms(took, 0.5):,.0f} ms, p99 {percentile_ms(took, 0.99):,.0f} ms "
          f"({CATCHUP_ROUNDS} reconnects, hello to ready)", flush=True)
    # Topics of its own: the coordinator would otherwise start with the 50,000 events above, and
    # the sink with the records every round above wrote (and from their end, it could miss the
    # first records of this part, written before it was assigned its partitions).
    with own_topics("rt"):
        round_trip()


@contextmanager
def own_topics(suffix: str):
    from django.conf import settings
    from django.core.management import call_command

    from bench.common import drop_prefixed_topics

    prefix = settings.KAFKA_TOPIC_PREFIX
    os.environ["KAFKA_TOPIC_PREFIX"] = settings.KAFKA_TOPIC_PREFIX = f"{prefix.rstrip('.')}-{suffix}."
    try:
        call_command("ensuretopics", stdout=open(os.devnull, "w"))
        yield
    finally:
        drop_prefixed_topics()
        os.environ["KAFKA_TOPIC_PREFIX"] = settings.KAFKA_TOPIC_PREFIX = prefix


def _device(user, name: str) -> tuple[str, str]:
    from rest_framework.authtoken.models import Token

    return str(Device.objects.create(user=user, name=name, platform="cli").id), Token.objects.get_or_create(
        user=user)[0].key


def round_trip() -> None:
    """A pushed edit: answered, back on its device, on the user's other device (p50/p99), under
    WRITERS concurrent writers; the answer against the command called directly."""
    import threading

    from websockets.sync.client import connect

    from apps.sync.client.queue import Queue
    from apps.todos import services

    from apps.todos.models import OutboxEvent

    from apps.sync.models import SyncRecord, SyncTodo, SyncUser

    # The bench's own database: what an interrupted run left unpublished, and what the sink stored
    # of the topics of earlier runs (their offsets would hide this run's records).
    OutboxEvent.objects.all().delete()
    for model in (SyncRecord, SyncTodo, SyncUser):
        model.objects.all().delete()
    User = get_user_model()
    alice = User.objects.get_or_create(username="bench-sync-rt")[0]
    todo = services.todo_create(actor=alice, title="round trip", correlation_id="bench").todo_id
    direct = []
    for n in range(ROUND_TRIPS):
        started = time.perf_counter()
        services.todo_update(actor=alice, todo_id=todo, title=f"direct {n}", correlation_id="bench")
        direct.append(time.perf_counter() - started)
    port = free_port()
    group = uuid.uuid4().hex[:8]
    roles = [
        start_role("rt-web", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "apps.web.asgi:application"),
        start_role("rt-relay", "manage.py", "runrelay"),
        start_role("rt-sync", "manage.py", "runconsumer", "sync", "--group-id", f"bench-rt-{group}",
                   "--state-dir", tempfile.mkdtemp(prefix="bench-rt-")),
        start_role("rt-sink", "manage.py", "runconsumer", "sync-sink", "--group-id", f"bench-rt-sink-{group}"),
    ]
    stop = threading.Event()
    writes = [0]

    def writer(n: int) -> None:
        user = User.objects.get_or_create(username=f"bench-sync-writer-{n}")[0]
        mine = services.todo_create(actor=user, title="writer", correlation_id="bench").todo_id
        device_id, key = _device(user, f"writer-{n}")
        queue = Queue()
        with connect(f"ws://127.0.0.1:{port}/ws/sync/?token={key}", max_size=None) as ws:
            ws.send(json.dumps({"type": "hello", "deviceId": device_id, "lastOffset": -1}))
            while not stop.is_set():
                queue.change("update", str(mine), title=f"w{queue.last_id}")
                ws.send(json.dumps({"type": "push", "mutations": queue.to_push()}))
                while True:
                    frame = json.loads(ws.recv())
                    if frame["type"] == "pushed":
                        queue.confirmed(frame["lastMutationId"])
                        writes[0] += 1
                        break

    try:
        wait_http(port)
        (a_id, key), (b_id, _) = _device(alice, "rt-a"), _device(alice, "rt-b")
        threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(WRITERS)]
        answered, back, other = [], [], []
        with connect(f"ws://127.0.0.1:{port}/ws/sync/?token={key}", max_size=None) as a, \
                connect(f"ws://127.0.0.1:{port}/ws/sync/?token={key}", max_size=None) as b:
            qa, qb = Queue(), Queue()
            for ws, device_id in ((a, a_id), (b, b_id)):
                ws.send(json.dumps({"type": "hello", "deviceId": device_id, "lastOffset": -1}))

            def until(ws, queue, done) -> None:
                while True:
                    frame = json.loads(ws.recv(timeout=120))
                    queue.apply(frame)
                    if done(frame):
                        return

            until(a, qa, lambda f: f["type"] == "ready")
            until(b, qb, lambda f: f["type"] == "ready")
            for thread in threads:
                thread.start()
            time.sleep(1)  # the writers under way (a pace, not a wait for an effect)
            for n in range(-WARM_UP, ROUND_TRIPS):  # the first ones wait for the coordinator's backlog
                if n == 0:
                    answered, back, other = [], [], []
                mutation = qa.change("update", str(todo), title=f"round trip {n}")
                started = time.perf_counter()
                a.send(json.dumps({"type": "push", "mutations": qa.to_push()}))
                mine = lambda f: (f["type"] == "record" and f["record"]["event"]["metadata"].get("origin", {}).get(
                    "mutationId") == mutation["id"] and f["record"]["event"]["metadata"]["origin"]["deviceId"] == a_id)
                until(a, qa, lambda f: f["type"] == "pushed")
                answered.append(time.perf_counter() - started)
                until(a, qa, mine)
                back.append(time.perf_counter() - started)
                until(b, qb, mine)
                other.append(time.perf_counter() - started)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        stop.set()
        stop_roles(roles)
    for label, took in ((f"pushed edit answered ({WRITERS} writers meanwhile)", answered),
                        ("its record back on the device", back), ("its record on the user's other device", other),
                        ("the same command called directly (baseline)", direct)):
        took = sorted(took)
        print(f"  {label:<52} p50 {percentile_ms(took, 0.5):,.1f} ms, p99 {percentile_ms(took, 0.99):,.1f} ms",
              flush=True)
    print(f"  {'answered / direct (p50)':<52} {statistics.median(answered) / statistics.median(direct):.2f} "
          f"({writes[0]:,} concurrent writes answered meanwhile)", flush=True)

