"""Projection: events/s applied by `runconsumer projections` (Kafka -> validate, upcast ->
idempotent apply with history and offsets, one transaction per batch) vs raw batched upserts
of the same rows into PostgreSQL (executemany, one transaction per 1,000 rows)."""
import time
import uuid

from django.db import connection, transaction

from apps.projections import services
from bench.common import fast_envelopes, report, report_ratio
from polystack.streaming.registry import get_consumer
from polystack.streaming.runner import Runner, RunnerOptions
from polystack.streaming.topics import TODO_EVENTS, resolve
from tests.projections.synthetic import publish

EVENTS = 100_000
TODOS = 10_000
BATCH = 1000


def wipe() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(services.LIVE.all())}")


def through_the_consumer() -> float:
    wipe()
    definition = get_consumer("projections")
    handler = definition.handler_factory()
    clock = {"seen": 0, "started": None, "finished": None}

    class Counting(type(handler)):
        def handle_batch(self, messages):
            if clock["started"] is None:
                clock["started"] = time.perf_counter()
            rejected = super().handle_batch(messages)
            clock["seen"] += len(messages)
            if clock["seen"] >= EVENTS:
                clock["finished"] = time.perf_counter()
                runner.stop()
            return rejected

    runner = Runner(
        definition.__class__(**{**definition.__dict__, "handler_factory": Counting}),
        RunnerOptions(group_id=f"bench-projection-{uuid.uuid4().hex[:8]}", max_batch_size=BATCH),
    )
    runner.run()
    assert runner.stats.dead_lettered == 0
    return EVENTS / (clock["finished"] - clock["started"])


def raw_upserts(envelopes: list[dict]) -> float:
    rows, state = [], {}
    for envelope in envelopes:  # the row each event produces, computed up front
        row = services.apply_event(state.get(envelope["aggregateId"]), envelope)
        state[envelope["aggregateId"]] = row
        rows.append(tuple(row[c] for c in services.TODO_COLUMNS))
    columns = ", ".join(services.TODO_COLUMNS)
    sql = (f"INSERT INTO bench_rows ({columns}) VALUES ({', '.join(['%s'] * len(services.TODO_COLUMNS))}) "
           f"ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in services.TODO_COLUMNS[1:]))
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_rows")
        cursor.execute(f"CREATE TABLE bench_rows (LIKE {services.LIVE.todos} INCLUDING ALL)")
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows[i:i + BATCH])
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_rows")
    return len(rows) / elapsed


def run() -> None:
    envelopes = fast_envelopes(EVENTS, todos=TODOS)
    print(f"  publishing {EVENTS:,} events of {TODOS:,} todos ...", flush=True)
    publish(resolve(TODO_EVENTS), envelopes)
    baseline = raw_upserts(envelopes)
    ours = through_the_consumer()
    report("raw batched upserts of the same rows", baseline, "rows/s")
    report("projection consumer, applied", ours, "events/s")
    report_ratio("ratio projection / raw upserts", ours / baseline, 0.5)
