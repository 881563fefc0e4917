"""Shared helpers of the benchmarks: a scratch topic, bulk produce, roles as processes,
medians and ratios."""
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from polystack.streaming import kafka


@contextmanager
def scratch_topic(partitions: int):
    """A topic for one benchmark, under the run's prefix; yields its name on the cluster."""
    from polystack.streaming.topics import resolve

    name = resolve(f"scratch-{uuid.uuid4().hex[:10]}")
    admin = kafka.admin_client()
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    try:
        yield name
    finally:
        admin.delete_topics([name])[name].result(30)


def fill(topic: str, count: int, payload: bytes, headers: list | None = None) -> None:
    producer = Producer(kafka.base_config(**{"linger.ms": 50, "batch.size": 1_000_000, "compression.type": "lz4",
                                             "queue.buffering.max.messages": 1_000_000}))
    for i in range(count):
        kafka.produce(producer, topic, value=payload, key=str(i % 1000).encode(), headers=headers)
    assert producer.flush(60) == 0


def median(values: list[float]) -> float:
    return statistics.median(values)


def report_paired_ratio(label: str, ours: list[float], theirs: list[float], target: float) -> None:
    """Each round's ratio, then their median against the target.

    The median of the rounds' ratios: rounds alternate the two loops, so both halves of a
    round see the same machine; on a shared, noisy machine this is steadier than the ratio of
    the two medians, which can pair a fast round of one with a slow round of the other."""
    print(f"  {label}, round by round: " + ", ".join(f"{o / t:.2f}" for o, t in zip(ours, theirs)), flush=True)
    report_ratio(f"{label} (median of the rounds)", statistics.median(o / t for o, t in zip(ours, theirs, strict=True)), target)


def report(label: str, value: float, unit: str) -> None:
    print(f"  {label:<52} {value:>12,.0f} {unit}", flush=True)


def report_ratio(label: str, ratio: float, target: float) -> None:
    verdict = "meets" if ratio >= target else "BELOW"
    print(f"  {label:<52} {ratio:>12.2f}   (target >= {target}: {verdict})", flush=True)


def drop_prefixed_topics() -> None:
    """Delete the topics this benchmark run created under its prefix."""
    from django.conf import settings

    admin = kafka.admin_client()
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(settings.KAFKA_TOPIC_PREFIX)]
    if names:
        for future in admin.delete_topics(names).values():
            future.result(30)


def fast_envelopes(count: int, *, todos: int, user_id: int = 1, seed: int = 7) -> list[dict]:
    """Valid todo events made quickly (no schema check here; every read path checks them):
    `todos` todos, each created then prioritized/updated in turn, interleaved."""
    import random

    from apps.todos.events import CATEGORIES

    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(todos)]
    versions = [0] * todos
    out = []
    for n in range(count):
        i = n % todos
        versions[i] += 1
        version = versions[i]
        stamp = f"2026-01-01T00:{(n // 60) % 60:02d}:{n % 60:02d}.{n % 1000000:06d}Z"
        if version == 1:
            kind, data = "TodoCreated", {"title": f"todo {i}", "description": "", "userId": str(user_id),
                                         "createdAt": stamp, "priority": "medium", "dueDate": None, "teamId": None}
            schema = 3
        elif version % 2:
            kind, data, schema = "TodoPrioritized", {"priority": rng.choice(["low", "high"]), "prioritizedAt": stamp}, 1
        else:
            kind, data, schema = "TodoUpdated", {"title": f"todo {i} v{version}", "description": "x" * 40,
                                                 "updatedAt": stamp}, 1
        out.append({
            "eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "eventType": kind,
            "schemaVersion": schema, "occurredAt": stamp, "aggregateId": ids[i], "aggregateVersion": version,
            "userId": str(user_id), "correlationId": f"bench-{n}", "causationId": None,
            "metadata": {"notificationRequired": False, "affectedUsers": [str(user_id)],
                         "category": CATEGORIES[kind], "actorId": str(user_id)},
            "data": {"todoId": ids[i], **data},
        })
    return out


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_role(name: str, *args: str, settings: str = "polystack.settings.test") -> subprocess.Popen:
    """Start a role (`python ARGS`) on the benchmark's database and topics; its output goes
    to bench/results/<name>.log (git-ignored)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings, "LOG_LEVEL": "WARNING"}
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    log = open(os.path.join(ROOT, "bench", "results", f"{name}.log"), "w")
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_roles(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_http(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def log_append_time(topic: str) -> None:
    """Have the broker stamp `topic`'s records with their append time (not the producer's
    CreateTime), so that a record's timestamp says when Kafka acknowledged it."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET)])
    admin = kafka.admin_client()  # held until the futures resolve: a collected client cancels them
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def percentile_ms(sorted_seconds: list[float], q: float) -> float:
    """The q-quantile, in ms, of sorted values in seconds (nan when there are none)."""
    if not sorted_seconds:
        return float("nan")
    return sorted_seconds[min(int(len(sorted_seconds) * q), len(sorted_seconds) - 1)] * 1000


def rate_from_first_commit(role: subprocess.Popen, *, name: str, group: str, topic: str,
                           ends: dict[int, int]) -> tuple[float, int]:
    """Events/s of a consumer role over `topic` up to `ends`, timed from the first offsets its
    group committed to its committed end (its start-up and group join are not counted); and
    how many events that covers."""
    from confluent_kafka import Consumer, TopicPartition

    watcher = Consumer(kafka.base_config(**{"group.id": group, "enable.auto.commit": False}))
    first = None
    try:
        while True:
            committed = watcher.committed([TopicPartition(topic, p) for p in ends], timeout=10)
            now = time.perf_counter()
            done = sum(max(tp.offset, 0) for tp in committed)
            if first is None and done:
                first = (now, done)
            if all(tp.offset >= ends[tp.partition] or not ends[tp.partition] for tp in committed):
                break
            if role.poll() is not None:
                raise RuntimeError(f"the role exited with {role.returncode}: bench/results/{name}.log")
            time.sleep(0.05)  # the poll interval of the committed offsets
    finally:
        watcher.close()
        stop_roles([role])
    timed = sum(ends.values()) - first[1]
    return timed / (now - first[0]), timed
