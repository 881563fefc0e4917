"""Commands: POST /api/todos/ at concurrency 16 against a real daphne process (with the relay
and the projection running, so each answer waits for its event to be projected), vs a plain
DRF create of the same row without events. Requests/s, p50 and p99, in one run: the two
alternate for ROUNDS rounds, and the ratio is the median of the rounds' ratios.

A command answers 201 once its event is projected, or 202 when the projection did not catch up
within READ_YOUR_WRITES_TIMEOUT_S: the command committed, but the client did not get to read
its write. So 202s are reported on their own (their share; target 0 at this concurrency), and
the latencies are those of the 201s alone."""
import http.client
import json
import threading
import time

from django.db import connection
from rest_framework.authtoken.models import Token

from bench.common import free_port, report, report_paired_ratio, start_role, stop_roles, wait_http
from django.contrib.auth import get_user_model

CONCURRENCY = 16
ROUNDS = 3
DURATION_S = 6.0  # per path and round


def load(port: int, path: str, token: str) -> dict:
    """CONCURRENCY keep-alive clients posting for DURATION_S; requests/s of 2xx answers, and the
    latencies of the 201s."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + DURATION_S
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = 0
        while time.monotonic() < deadline:
            body = json.dumps({"title": f"bench {n}-{i}", "priority": "high"})
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 201:
                    latencies.append(elapsed)
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CONCURRENCY)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    answered = sum(count for status, count in statuses.items() if 200 <= status < 300)
    return {
        "rps": answered / elapsed,
        "accepted": statuses.get(202, 0) / answered if answered else float("nan"),
        "p50": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
        "statuses": statuses,
    }


def run() -> None:
    user, _ = get_user_model().objects.get_or_create(username="bench")
    token, _ = Token.objects.get_or_create(user=user)
    connection.close()
    port = free_port()
    processes = [
        start_role("web", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "apps.web.asgi:application", settings="bench.settings"),
        start_role("relay", "manage.py", "runrelay"),
        start_role("projections", "manage.py", "runconsumer", "projections", "--group-id", f"bench-commands-{port}"),
    ]
    try:
        wait_http(port)
        load(port, "/api/bench/plain-todos/", token.key)  # warm up both paths
        load(port, "/api/todos/", token.key)
        plain, ours = [], []
        for _ in range(ROUNDS):
            plain.append(load(port, "/api/bench/plain-todos/", token.key))
            ours.append(load(port, "/api/todos/", token.key))
    finally:
        stop_roles(processes)
    for label, results in (("plain DRF create, no events", plain), ("POST /api/todos/ (outbox, read-your-writes)", ours)):
        middle = sorted(results, key=lambda r: r["rps"])[len(results) // 2]
        report(f"{label}: req/s", middle["rps"], "req/s (median round)")
        print(f"  {'':<52} 201s: p50 {middle['p50']:.1f} ms, p99 {middle['p99']:.1f} ms; statuses {middle['statuses']}")
    accepted = [r["accepted"] for r in ours]
    print(f"  {'202 share of the commands (not read back in time)':<52} {max(accepted):>12.2%}   (worst round; "
          f"target 0: {'meets' if max(accepted) == 0 else 'BELOW'})", flush=True)
    report_paired_ratio("ratio commands / plain create", [r["rps"] for r in ours], [r["rps"] for r in plain], 0.7)
