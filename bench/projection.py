"""Projection: events/s applied by `runconsumer projections` (Kafka -> validate, upcast ->
idempotent apply with history and offsets, one transaction per batch) vs the fastest raw write
of the same rows into the same tables: per 1,000 events, in one transaction, the batch's todo
rows COPYed into a staging table and upserted in one statement, and its history rows COPYed
straight into the history table (computed up front, no Kafka, no checks, no offsets). The two
alternate for ROUNDS rounds; the ratio is the median of the rounds' ratios."""
import json
import time
import uuid

from django.db import connection, transaction

from apps.projections import services
from bench.common import fast_envelopes, median, report, report_paired_ratio
from polystack.streaming.registry import get_consumer
from polystack.streaming.runner import Runner, RunnerOptions
from polystack.streaming.topics import TODO_EVENTS, resolve
from tests.projections.synthetic import publish

EVENTS = 100_000
TODOS = 10_000
BATCH = 1000
ROUNDS = 3


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


def raw_batches(envelopes: list[dict]) -> list[tuple[list[tuple], list[tuple]]]:
    """Per BATCH events: the todo rows as they stand after the batch, and its history rows."""
    state, batches = {}, []
    for start in range(0, len(envelopes), BATCH):
        changed, history = {}, []
        for offset, envelope in enumerate(envelopes[start:start + BATCH], start):
            todo_id = envelope["aggregateId"]
            state[todo_id] = changed[todo_id] = services.apply_event(state.get(todo_id), envelope)
            history.append((envelope["eventId"], todo_id, envelope["aggregateVersion"], envelope["eventType"],
                            envelope["occurredAt"], json.dumps(envelope), 0, offset))
        batches.append(([tuple(row[c] for c in services.TODO_COLUMNS) for row in changed.values()], history))
    return batches


def raw_copy(batches: list[tuple[list[tuple], list[tuple]]]) -> float:
    wipe()
    todos, history = services.LIVE.todos, services.LIVE.events
    columns, event_columns = ", ".join(services.TODO_COLUMNS), ", ".join(services.EVENT_COLUMNS)
    upsert = (f"INSERT INTO {todos} ({columns}) SELECT {columns} FROM bench_stage ON CONFLICT (id) DO UPDATE SET "
              + ", ".join(f"{c} = EXCLUDED.{c}" for c in services.TODO_COLUMNS[1:]))
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS bench_stage (LIKE {todos} INCLUDING DEFAULTS) "
                       "ON COMMIT DELETE ROWS")
    started = time.perf_counter()
    for todo_rows, history_rows in batches:
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.copy(f"COPY bench_stage ({columns}) FROM STDIN") as copy:
                for row in todo_rows:
                    copy.write_row(row)
            cursor.execute(upsert)
            with cursor.copy(f"COPY {history} ({event_columns}) FROM STDIN") as copy:
                for row in history_rows:
                    copy.write_row(row)
    return sum(len(h) for _, h in batches) / (time.perf_counter() - started)


def run() -> None:
    envelopes = fast_envelopes(EVENTS, todos=TODOS)
    print(f"  publishing {EVENTS:,} events of {TODOS:,} todos ...", flush=True)
    publish(resolve(TODO_EVENTS), envelopes)
    batches = raw_batches(envelopes)
    raw, ours = [], []
    for _ in range(ROUNDS):  # alternate, so that machine noise hits both alike
        raw.append(raw_copy(batches))
        ours.append(through_the_consumer())
    report("raw COPY of the same rows into the same tables (median)", median(raw), "events/s")
    report("projection consumer, applied (median)", median(ours), "events/s")
    report_paired_ratio("ratio projection / raw COPY", ours, raw, 0.5)
