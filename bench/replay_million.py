"""Replay: rebuild the projection from 1,000,000 events on todo-events (aside, then swap),
with the time it took. Goal here: under 3 minutes. BENCH_REPLAY_EVENTS changes the count."""
import os
import time

from django.db import connection

from apps.projections import services
from apps.projections.replay import replay
from bench.common import fast_envelopes, report
from polystack.streaming.topics import TODO_EVENTS, resolve
from tests.projections.synthetic import publish

CHUNK = 100_000
TODOS_PER_CHUNK = 10_000


def run() -> None:
    total = int(os.environ.get("BENCH_REPLAY_EVENTS", "1000000"))
    topic = resolve(TODO_EVENTS)
    print(f"  publishing {total:,} events ...", flush=True)
    for start in range(0, total, CHUNK):
        # Each chunk is its own set of todos (seeded apart), so every stream stays gap-free.
        publish(topic, fast_envelopes(min(CHUNK, total - start), todos=TODOS_PER_CHUNK, seed=start + 1))
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(services.LIVE.all())}")
    started = time.perf_counter()
    last = [0.0]

    def progress(p):
        if p.elapsed_s - last[0] >= 15 or p.phase == "swapped":
            print(f"  {p.line()}", flush=True)
            last[0] = p.elapsed_s

    result = replay(progress=progress)
    elapsed = time.perf_counter() - started
    assert result.rejected == 0, result
    report(f"replay of {result.applied:,} events: events/s", result.applied / elapsed, "events/s")
    verdict = "meets" if elapsed < 180 else "BELOW"
    print(f"  {'replay time':<52} {elapsed:>12.1f} s      (goal < 180 s: {verdict})", flush=True)
