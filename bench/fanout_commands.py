"""The command side of the fan-out benchmark, run in processes of their own (spawned, so this
module imports nothing of Django before `django.setup()`)."""
import os
import random
import time

# Below the roles under test: on a shared 2-core machine the stand-ins for clients take what
# those leave (see bench.fanout). Latency is measured from before each command, so their own
# delays still count against the result.
NICE = 10


def issue(todos, rate: float, duration_s: float, seed: int, results, start) -> None:
    """`rate` commands/s for `duration_s`, evenly paced, in a process of its own (the load
    generator's loop must not slow the commands down), from when every process is ready and
    the `start` barrier opens; sends back each event's issue and commit times and audience."""
    import django

    django.setup()  # a spawned process: the environment (database, topic prefix) is the parent's
    from django.contrib.auth import get_user_model
    from django.db import connection

    from apps.todos import services

    owners = get_user_model().objects.in_bulk({owner_id for owner_id, _ in todos})
    todos = [(owners[owner_id], todo_id) for owner_id, todo_id in todos]
    rng = random.Random(seed)
    interval = 1 / rate
    os.nice(NICE)
    start.wait()  # a process starting up takes a core for a second: not while measuring
    stop_at = time.monotonic() + duration_s
    next_at = time.monotonic()
    out = []
    i = 0
    while time.monotonic() < stop_at:
        owner, todo_id = todos[rng.randrange(len(todos))]
        issued = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process
        if rng.random() < 0.5:
            result = services.todo_update(actor=owner, todo_id=todo_id, title=f"edit {i}", correlation_id="bench")
        else:
            result = services.todo_prioritize(actor=owner, todo_id=todo_id, priority=rng.choice(["low", "high"]),
                                              correlation_id="bench")
        committed = time.time()  # wall clock, to compare with Kafka's timestamps
        out += [(e["eventId"], issued, committed, e["aggregateId"], e["aggregateVersion"],
                 e["metadata"]["affectedUsers"]) for e in result.events]
        i += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    connection.close()
    results.put(out)
