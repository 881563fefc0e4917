"""The todo projection against the real broker and database: idempotency, DLQ, replay,
snapshots, crashes."""
import json
import random
import signal
import threading

import pytest
from django.core.management import call_command
from django.db import connection

from apps.projections import services
from apps.projections.models import ParkedEvent, ProjectionOffset, Snapshot, TodoView
from apps.projections.replay import replay
from polystack.streaming.topics import TODO_EVENTS, TODO_EVENTS_DLQ, resolve
from tests.helpers import consume_all, unique, wait_until
from tests.projections.synthetic import interleave, publish, todo_stream


def applied_through() -> int:
    """How many messages of todo-events the live projection has taken in (sum of next offsets)."""
    return sum(ProjectionOffset.objects.values_list("next_offset", flat=True))


def wipe_read_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(services.LIVE.all())}")


def synthetic(todos: int, *, length: int = 5, seed: int = 1, user_id: int = 1) -> list[dict]:
    rng = random.Random(seed)
    return interleave([todo_stream(user_id=user_id, length=length, rng=rng) for _ in range(todos)], rng)


@pytest.fixture
def projection(roles):
    """Start (and restart) the projection consumer process with a group of this test's own."""
    group = unique("projection")
    return lambda **env: roles("runconsumer", "projections", "--group-id", group, env=env)


def test_the_same_events_delivered_twice_change_nothing(projection, event_topics):
    topic = resolve(TODO_EVENTS)
    envelopes = synthetic(30)
    publish(topic, envelopes)
    projection()
    wait_until(lambda: applied_through() == len(envelopes), what="every event applied")
    before = services.checksum()

    publish(topic, envelopes)  # every event again, as a redelivery would
    wait_until(lambda: applied_through() == 2 * len(envelopes), what="the duplicates consumed")
    assert services.checksum() == before
    assert TodoView.objects.count() == 30
    assert consume_all(resolve(TODO_EVENTS_DLQ), 1, timeout=2) == [], "duplicates are no-ops, not poison"


def test_poison_events_go_to_the_dlq_and_the_projection_goes_on(projection, event_topics):
    topic = resolve(TODO_EVENTS)
    rng = random.Random(2)
    stream = todo_stream(user_id=1, length=4, rng=rng)
    unknown = {**stream[1], "eventType": "TodoExploded"}
    gap = stream[3]  # version 4 while the projection has 1
    good = todo_stream(user_id=1, length=2, rng=rng)
    publish(topic, [stream[0], b"{this is not json", unknown, gap, *good], key="1")
    projection()

    wait_until(lambda: TodoView.objects.filter(id=good[0]["aggregateId"], version=2).exists(),
               what="the good events after the poison applied")
    dead = consume_all(resolve(TODO_EVENTS_DLQ), 3, timeout=5)
    reasons = {m.value(): dict(m.headers()) for m in dead}
    assert reasons[b"{this is not json"]["dlq.error.class"] == b"NonRetriableError"
    assert reasons[json.dumps(unknown).encode()]["dlq.error.class"] == b"InvalidEventError"
    assert len(dead) == 2, "the gap waits for its missing version instead"
    assert TodoView.objects.get(id=stream[0]["aggregateId"]).version == 1, "the gap was not applied"
    assert ParkedEvent.objects.get().aggregate_version == 4


def test_replay_rebuilds_identical_tables_from_the_start_and_from_a_snapshot(projection, roles, alice_client):
    roles("runrelay")
    projection()
    client = alice_client
    ids = [client.post("/api/todos/", {"title": f"todo {n}"}, format="json").json()["id"] for n in range(8)]
    for todo_id in ids[:4]:
        client.post(f"/api/todos/{todo_id}/complete/", format="json")
    call_command("snapshot", "projections")
    for todo_id in ids[4:6]:
        client.patch(f"/api/todos/{todo_id}/", {"description": "after the snapshot"}, format="json")
    client.delete(f"/api/todos/{ids[7]}/")
    live = services.checksum()
    live_offsets = services.offsets()

    wipe_read_tables()
    assert TodoView.objects.count() == 0
    lines = []
    replay(progress=lambda p: lines.append(p.line()))
    assert services.checksum() == live, "full replay == live state"
    assert services.offsets() == live_offsets
    assert lines[-1].startswith("swapped: 15/15 events (100.0%)")

    replay(from_snapshot=True)
    assert services.checksum() == live, "snapshot replay == live state"
    assert client.get(f"/api/todos/{ids[0]}/").json()["completed"] is True, "the API reads the swapped tables"


def test_periodic_snapshots_every_n_events(projection, event_topics):
    envelopes = synthetic(4, length=2)
    publish(resolve(TODO_EVENTS), envelopes)
    projection(PROJECTION_SNAPSHOT_EVERY="3")
    wait_until(lambda: applied_through() == len(envelopes), what="every event applied")
    # A periodic snapshot is its own transaction, after the batch that reached the interval
    # committed: it may come a moment after the events are visible.
    wait_until(lambda: Snapshot.objects.exists(), what="at least one periodic snapshot")
    snapshots = list(Snapshot.objects.order_by("id"))
    assert all(s.reason == "periodic" for s in snapshots)
    positions = [sum(s.offsets.values()) for s in snapshots]
    assert all(b - a >= 3 for a, b in zip(positions, positions[1:])), "one every 3 events at most"
    assert snapshots[-1].event_count == positions[-1], "the copy matches the offsets it records"


def test_replay_loses_no_live_event(projection, roles, alice_client):
    roles("runrelay")
    publish(resolve(TODO_EVENTS), synthetic(400, length=5, seed=3))
    process = projection()
    wait_until(lambda: applied_through() == 2000, timeout=60, what="the history applied")

    created: list[str] = []
    stop = threading.Event()

    def commands():
        while not stop.is_set() and len(created) < 40:
            response = alice_client.post("/api/todos/", {"title": f"live {len(created)}"}, format="json")
            created.append(response.json()["id"])

    writer = threading.Thread(target=commands)
    writer.start()
    try:
        replay(batch_size=200)
    finally:
        stop.set()
        writer.join(60)
    assert process.poll() is None
    total = 2000 + len(created)
    wait_until(lambda: applied_through() >= total, what="the live events applied")
    assert TodoView.objects.filter(id__in=created).count() == len(created)
    live = services.checksum()
    replay()
    assert services.checksum() == live


def test_sigkill_mid_batch_then_restart_reaches_the_expected_state(projection, event_topics):
    envelopes = synthetic(2000, length=5, seed=4)
    publish(resolve(TODO_EVENTS), envelopes)
    first = projection()
    wait_until(lambda: applied_through() > 1000, timeout=60, what="part of the events applied")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert 0 < applied_through() < len(envelopes), "killed part-way"

    projection()
    wait_until(lambda: applied_through() == len(envelopes), timeout=120, what="the restart to finish")
    live = services.checksum()
    replay()
    assert services.checksum() == live, "the state after the crash is the one the events define"
    assert consume_all(resolve(TODO_EVENTS_DLQ), 1, timeout=2) == []


def test_admin_queues_a_replay_job_that_a_worker_runs(projection, event_topics, user_factory, client):
    from apps.projections.models import ProjectionJob
    from apps.projections.tasks import run_projection_job

    publish(resolve(TODO_EVENTS), synthetic(5))
    projection()
    wait_until(lambda: applied_through() == 25, what="every event applied")
    live = services.checksum()
    admin = user_factory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.post("/admin/projections/projectionjob/add/", {"kind": "replay"})
    assert response.status_code == 302, response.content
    job = ProjectionJob.objects.get()
    assert (job.status, job.requested_by) == ("queued", admin)

    run_projection_job.apply(args=[job.pk])  # what the Celery worker does with the queued task

    job.refresh_from_db()
    assert job.status == "succeeded" and job.progress.startswith("replayed 25 events")
    assert services.checksum() == live
    assert "succeeded" in client.get("/admin/projections/projectionjob/").content.decode()


def test_v1_events_written_before_the_schema_evolved_still_project_and_replay(projection, event_topics):
    """TodoCreated v1 had no priority or dueDate (and v2 no teamId), and Phase 1 events no
    metadata; they are upcast on every read path."""
    from apps.projections.models import TodoEvent

    created = todo_stream(user_id=1, length=1, rng=random.Random(5))[0]
    v1 = {**{k: v for k, v in created.items() if k != "metadata"}, "schemaVersion": 1,
          "data": {k: v for k, v in created["data"].items() if k not in ("priority", "dueDate", "teamId")}}
    publish(resolve(TODO_EVENTS), [v1])
    projection()
    wait_until(lambda: TodoView.objects.filter(id=v1["aggregateId"]).exists(), what="the v1 event applied")
    todo = TodoView.objects.get(id=v1["aggregateId"])
    assert (todo.priority, todo.due_date) == ("medium", None)
    stored = TodoEvent.objects.get(todo_id=v1["aggregateId"]).envelope
    assert (stored["schemaVersion"], stored["data"]["priority"], stored["data"]["teamId"]) == (3, "medium", None), \
        "history shows the current shape"
    assert stored["metadata"]["affectedUsers"] == ["1"]
    live = services.checksum()

    wipe_read_tables()
    replay()
    assert services.checksum() == live, "a replay over v1 events gives the same state"
