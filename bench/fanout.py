"""WebSocket fan-out: 1,000 and 10,000 authenticated sockets held by the web role while
commands run at 100/s, with the relay, the projection and the realtime consumer running.

The web role is WEB_PROCESSES daphne processes, the sockets spread over them as a load
balancer would: one daphne is one event loop on one core, and on this 2-core machine a
burst of frames queued behind a single loop set the tail (p99 157-314 ms with one process,
104-206 ms with two, over the runs of 2026-11-27).

Users: sockets / SOCKETS_PER_USER people in teams of TEAM_SIZE, each with SOCKETS_PER_USER
sockets (tabs, devices); BENCH_FANOUT_SOCKETS lists the sizes (default "1000,10000"). Each
command changes a team todo (by its owner, through the command service in processes of their
own, so the rate is the command path's, not the HTTP server's), and its event is pushed to
every socket of every team member. Measured: sockets still connected at the end; frames lost
live (a figure of its own, target 0), with how long the clients took to get them through
catch-up; frames still missing after that; and the latency from the moment a command is issued
(before its transaction) to each frame's arrival (p50, p99), over the frames that arrived live.
The latency splits at Kafka's acknowledgement: the benchmark's topic stamps each record with
the broker's LogAppendTime, which the realtime consumer passes on as the frame's publishedAt.

Everything shares one 2-core machine here. The command processes stand in for clients and
for web workers that would run elsewhere: they run at a lower CPU priority (nice
fanout_commands.NICE), so they take what the roles under test leave. Their own delays still
count, since the clock starts before each command.
BENCH_FANOUT_RATE changes the command rate.
"""
import asyncio
import gc
import json
import multiprocessing
import os
import queue
import random
import threading
import time

from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect

from apps.todos import services
from apps.todos.models import Team
from bench import fanout_commands
from bench.common import free_port, log_append_time, percentile_ms, report, start_role, stop_roles, wait_http
from polystack.streaming.topics import TODO_EVENTS, resolve

SOCKETS = [int(n) for n in os.environ.get("BENCH_FANOUT_SOCKETS", "1000,10000").split(",")]
TEAM_SIZE = 4
SOCKETS_PER_USER = 2
RATE_PER_S = int(os.environ.get("BENCH_FANOUT_RATE", "100"))  # the issue's rate; lower it to find the knee
DURATION_S = 30.0
DRAIN_S = 15.0
SETTLE_S = 5.0  # between the last socket opened and the first command
CONNECT_CONCURRENCY = 50
COMMANDERS = 2  # processes issuing commands, RATE_PER_S / COMMANDERS each
WEB_PROCESSES = int(os.environ.get("BENCH_FANOUT_WEB_PROCESSES", "2"))  # daphne processes sharing the sockets


def _setup(users_count: int) -> tuple[list[tuple[int, str]], list[tuple[object, str]]]:
    """Users with tokens, their teams, one todo per team; returns (user id, token) pairs and
    (owner, todo id) pairs."""
    User = get_user_model()
    run = random.randrange(10**9)
    users = User.objects.bulk_create([User(username=f"fan{run}-{i}") for i in range(users_count)])
    Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
    tokens = dict(Token.objects.filter(user__in=users).values_list("user_id", "key"))
    todos = []
    for start in range(0, users_count, TEAM_SIZE):
        members = users[start:start + TEAM_SIZE]
        team = Team.objects.create(name=f"fan {start}", owner=members[0])
        team.members.add(*members)
        result = services.todo_create(actor=members[0], title=f"team {start}", team_id=team.id, correlation_id="bench")
        todos.append((members[0], str(result.todo_id)))
    return [(u.pk, tokens[u.pk]) for u in users], todos


class Load:
    def __init__(self, ports: list[int], users: list[tuple[int, str]]):
        self.ports = ports
        self.users = users
        self.received: dict[int, dict[str, float]] = {}  # socket -> eventId -> arrival
        self.user_of: dict[int, str] = {}
        self.sockets: dict[int, object] = {}
        self.closed: set[int] = set()
        self.published: dict[str, float] = {}  # eventId -> Kafka's LogAppendTime (wall clock, s)
        self.push_lag: list[tuple[str, float]] = []  # (eventId, Kafka's append -> arrival) per live frame

    async def open(self, n: int, user_id: int, token: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            port = self.ports[n % len(self.ports)]  # sockets spread over the web processes
            ws = await connect(f"ws://127.0.0.1:{port}/ws/todos/?token={token}",
                               origin=f"http://127.0.0.1:{port}", open_timeout=60, max_queue=None)
        self.sockets[n], self.user_of[n], self.received[n] = ws, str(user_id), {}

    async def listen(self, n: int) -> None:
        ws = self.sockets[n]
        seen = self.received[n]
        try:
            async for text in ws:
                now, wall = time.monotonic(), time.time()
                frame = json.loads(text)
                if frame["type"] == "event":
                    seen.setdefault(frame["event"]["eventId"], now)
                    if "publishedAt" in frame:  # a live frame: Kafka's append time splits the latency
                        self.published[frame["event"]["eventId"]] = frame["publishedAt"] / 1000
                        self.push_lag.append((frame["event"]["eventId"], wall - frame["publishedAt"] / 1000))
        except Exception:  # noqa: BLE001 - a dropped connection is what we count
            pass
        self.closed.add(n)


def _run_commands(todos, go: threading.Event) -> tuple[dict, dict, dict]:
    """Start the command processes at once, and let them issue commands once `go` is set
    and all are ready."""
    context = multiprocessing.get_context("spawn")  # fork would share the parent's connection pool
    results = context.Queue()
    start = context.Barrier(COMMANDERS + 1)
    todos = [(owner.pk, todo_id) for owner, todo_id in todos]
    workers = [context.Process(target=fanout_commands.issue,
                               args=(todos, RATE_PER_S / COMMANDERS, DURATION_S, n, results, start))
               for n in range(COMMANDERS)]
    for worker in workers:
        worker.start()
    go.wait()
    start.wait(timeout=120)
    issued, committed_wall, expected = {}, {}, {}
    for _ in workers:
        while True:
            try:
                batch = results.get(timeout=5)
                break
            except queue.Empty:
                if any(w.exitcode not in (None, 0) for w in workers):
                    raise RuntimeError("a command process failed (its traceback is above)") from None
        for event_id, at, wall, todo_id, version, users in batch:
            issued[event_id] = at
            committed_wall[event_id] = wall
            expected[event_id] = (todo_id, version, set(users))
    for worker in workers:
        worker.join(30)
    return issued, committed_wall, expected


async def _measure(ports: list[int], users, todos) -> dict:
    load = Load(ports, users)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    started = time.monotonic()
    pairs = [(n, user_id, token) for n, (user_id, token) in
             enumerate((u for u in users for _ in range(SOCKETS_PER_USER)))]
    await asyncio.gather(*(load.open(n, user_id, token, gate) for n, user_id, token in pairs))
    connect_s = time.monotonic() - started
    # The load generator's own garbage collections would show up as latency (a full one over
    # 1,000 connections takes 100-250 ms here): its heap is long-lived and what it makes per
    # frame is freed by reference counting, so the collector stays off while it measures.
    gc.collect()
    gc.disable()
    listeners = [asyncio.create_task(load.listen(n)) for n in load.sockets]
    # Measure holding the sockets, not the tail of the connection storm: let the servers finish
    # what 1,000 handshakes left them (their own full collections among it) first, while the
    # command processes start up.
    go = threading.Event()
    commands = asyncio.create_task(asyncio.to_thread(_run_commands, todos, go))
    await asyncio.sleep(SETTLE_S)
    go.set()
    issued, committed_wall, expected = await commands

    # Each user's events, worked out once: the drain loop below runs while the last frames
    # are still arriving, on the loop that timestamps them.
    owed: dict[str, set[str]] = {}
    for event_id, (_, _, users) in expected.items():
        for user in users:
            owed.setdefault(user, set()).add(event_id)

    def missing() -> dict[int, list[str]]:
        gaps = {}
        for n, seen in load.received.items():
            lost = [e for e in owed.get(load.user_of[n], ()) if e not in seen]
            if lost:
                gaps[n] = lost
        return gaps

    deadline = time.monotonic() + DRAIN_S
    while missing() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    live_missing = missing()
    frames_expected = sum(len(owed.get(load.user_of[n], ())) for n in load.received)
    latencies = sorted(seen[e] - issued[e] for seen in load.received.values() for e in seen if e in issued)
    # Only the measured commands' events: the setup's own (creating the todos) were pushed to the
    # first sockets while the rest connected, late by design.
    relay_lag = sorted(load.published[e] - committed_wall[e] for e in load.published if e in committed_wall)

    # Catch-up: each socket asks for the versions it lacks, as the web page does on a gap.
    for n, lost in live_missing.items():
        for todo_id in {expected[e][0] for e in lost}:
            versions = [expected[e][1] for e in lost if expected[e][0] == todo_id]
            if n not in load.closed:
                await load.sockets[n].send(json.dumps({"type": "catchup", "todoId": todo_id,
                                                       "afterVersion": min(versions) - 1,
                                                       "beforeVersion": max(versions) + 1}))
    deadline = time.monotonic() + DRAIN_S
    while missing() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    after_catchup = missing()
    # How long a frame lost live took to reach its client, counted from its command.
    recovered = sorted(load.received[n][e] - issued[e] for n, lost in live_missing.items() for e in lost
                       if e in load.received[n])
    held = len(load.sockets) - len(load.closed)
    for ws in load.sockets.values():
        await ws.close()
    for task in listeners:
        task.cancel()
    gc.enable()
    return {
        "sockets": len(load.sockets), "held": held, "connect_s": connect_s, "commands": len(issued),
        "frames": frames_expected, "lost_live": sum(map(len, live_missing.values())),
        "lost_after": sum(map(len, after_catchup.values())), "latencies": latencies,
        "relay_lag": relay_lag, "push_lag": sorted(lag for event_id, lag in load.push_lag if event_id in issued), "recovered": recovered,
    }


def run() -> None:
    log_append_time(resolve(TODO_EVENTS))
    for sockets in SOCKETS:
        _run_once(sockets)


def _run_once(sockets: int) -> None:
    users_count = sockets // SOCKETS_PER_USER
    users, todos = _setup(users_count)
    connection.close()
    ports = [free_port() for _ in range(WEB_PROCESSES)]
    port = ports[0]
    processes = [
        *(start_role(f"fanout-web-{n}", "-m", "daphne", "-b", "127.0.0.1", "-p", str(p), "apps.web.asgi:application")
          for n, p in enumerate(ports)),
        start_role("fanout-relay", "manage.py", "runrelay"),
        start_role("fanout-projections", "manage.py", "runconsumer", "projections", "--group-id", f"bench-fan-{port}"),
        start_role("fanout-realtime", "manage.py", "runconsumer", "realtime", "--group-id", f"bench-fan-rt-{port}"),
    ]
    try:
        for p in ports:
            wait_http(p)
        timeout = DURATION_S + 4 * DRAIN_S + 180 + sockets / 50
        result = asyncio.run(asyncio.wait_for(_measure(ports, users, todos), timeout=timeout))
    finally:
        stop_roles(processes)
    p50, p99 = percentile_ms(result["latencies"], 0.5), percentile_ms(result["latencies"], 0.99)
    print(f"\n  -- {sockets:,} sockets: {users_count:,} users in teams of {TEAM_SIZE}, {SOCKETS_PER_USER} sockets "
          f"each, on {WEB_PROCESSES} web process(es); {RATE_PER_S} commands/s for {DURATION_S:.0f} s from "
          f"{COMMANDERS} processes at nice {fanout_commands.NICE}", flush=True)
    report("sockets opened", result["sockets"], f"(in {result['connect_s']:.1f} s; commands began {SETTLE_S:.0f} s later)")
    report("sockets held to the end", result["held"], f"of {result['sockets']} (target: all)")
    report("commands", result["commands"], f"({result['commands'] / DURATION_S:.0f}/s)")
    report("frames expected", result["frames"], "")
    report("frames lost live", result["lost_live"], "(target: 0)")
    if result["lost_live"]:
        print(f"  {'  ... reached their client through catch-up':<52} {len(result['recovered']):>12,} "
              f"(p50 {percentile_ms(result['recovered'], 0.5):.0f} ms, max {percentile_ms(result['recovered'], 1.0):.0f} ms "
              f"after their command)", flush=True)
    report("frames missing after catch-up", result["lost_after"], "(target: 0)")
    print(f"  {'command-to-frame latency, live frames':<52} p50 {p50:.0f} ms, p99 {p99:.0f} ms   "
          f"(target p99 < 250 ms: {'meets' if p99 < 250 else 'BELOW'})", flush=True)
    for label, key in (("  of which commit -> Kafka ack (relay)", "relay_lag"),
                       ("  and Kafka ack -> socket (push)", "push_lag")):
        print(f"  {label:<52} p50 {percentile_ms(result[key], 0.5):.0f} ms, "
              f"p99 {percentile_ms(result[key], 0.99):.0f} ms", flush=True)
