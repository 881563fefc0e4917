"""The projection under disorder: gaps park and resume, concurrent appliers never regress a
todo, values the database refuses never stop it, snapshots keep working, one replay at a time."""
import random
import threading

import psycopg
import pytest
from django.db import connections

from apps.projections import services
from apps.projections.consumers import RefusedByDatabaseError, apply_or_isolate
from apps.projections.models import ParkedEvent, Snapshot, SnapshotEvent, SnapshotTodo, TodoView
from apps.projections.replay import ReplayRefusedError, ReplayRunningError, replay
from polystack import db
from polystack.streaming.topics import TODO_EVENTS, TODO_EVENTS_DLQ, resolve
from tests.helpers import consume_all, unique, wait_until
from tests.projections.synthetic import publish, todo_stream
from tests.projections.test_projection import applied_through, synthetic


def item(envelope: dict, offset: int = 0) -> services.Item:
    import json

    return services.Item(envelope=envelope, json=json.dumps(envelope), topic="t", partition=0, offset=offset)


def in_thread(target, outcome: list) -> threading.Thread:
    """Run `target` in a thread of its own (its own database connection); what it returns or
    raises goes to `outcome`."""

    def run():
        try:
            outcome.append(target())
        except BaseException as exc:  # reported to the test
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def projection(roles):
    group = unique("projection")
    return lambda *args, **env: roles("runconsumer", "projections", "--group-id", group, *args, env=env)


def test_a_gap_parks_the_event_and_it_applies_when_the_missing_version_arrives(projection, event_topics):
    stream = todo_stream(user_id=1, length=5, rng=random.Random(11))
    todo_id = stream[0]["aggregateId"]
    publish(resolve(TODO_EVENTS), [stream[0], stream[2], stream[3]])  # v2 is late
    projection()
    wait_until(lambda: ParkedEvent.objects.filter(todo_id=todo_id).count() == 2, what="v3 and v4 parked")
    assert TodoView.objects.get(id=todo_id).version == 1

    publish(resolve(TODO_EVENTS), [stream[1], stream[4]])  # the missing v2, then v5
    wait_until(lambda: TodoView.objects.filter(id=todo_id, version=5).exists(), what="everything applied in order")
    assert not ParkedEvent.objects.exists()
    assert consume_all(resolve(TODO_EVENTS_DLQ), 1, timeout=2) == [], "a gap is a wait, not poison"
    live = services.checksum()
    replay()
    assert services.checksum() == live, "the same state as applying the events in order"


def test_only_what_can_never_apply_goes_to_the_dlq(projection, event_topics):
    stream = todo_stream(user_id=1, length=2, rng=random.Random(12))
    second_create = {**stream[0], "eventId": "00000000-0000-4000-8000-000000000001", "aggregateVersion": 2}
    first_update = {**stream[1], "eventId": "00000000-0000-4000-8000-000000000002", "aggregateVersion": 1}
    publish(resolve(TODO_EVENTS), [second_create, first_update, *stream])
    projection()
    wait_until(lambda: TodoView.objects.filter(id=stream[0]["aggregateId"], version=2).exists(), what="the todo")
    classes = {dict(m.headers())["dlq.error.class"] for m in consume_all(resolve(TODO_EVENTS_DLQ), 2)}
    assert classes == {b"ImpossibleVersionError"}


def test_a_stale_applier_never_puts_an_older_version_back(transactional_db):
    """A zombie consumer (or a replay racing the live one) applies v1 while another applier's
    v1..v3 is about to commit: the upsert must not overwrite v3 with v1."""
    stream = todo_stream(user_id=1, length=3, rng=random.Random(13))
    todo_id = stream[0]["aggregateId"]
    ahead_wrote, go_on = threading.Event(), threading.Event()
    outcome = []

    def ahead():
        from django.db import transaction

        with transaction.atomic():
            services.apply_items(tables=services.LIVE, items=[item(e, n) for n, e in enumerate(stream)])
            ahead_wrote.set()
            go_on.wait(30)

    first = in_thread(ahead, outcome)
    assert ahead_wrote.wait(30)
    second = in_thread(lambda: services.apply_items(tables=services.LIVE, items=[item(stream[0], 0)]), outcome)
    with psycopg.connect(db.conninfo(), autocommit=True) as watch:  # the stale insert waits on the row
        wait_until(lambda: watch.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                         "AND datname = current_database()").fetchone()[0] > 0,
                   what="the stale applier blocked on the newer row")
    go_on.set()
    first.join(30)
    second.join(30)
    assert not [o for o in outcome if isinstance(o, BaseException)], outcome
    assert TodoView.objects.get(id=todo_id).version == 3


def test_a_value_the_database_refuses_rejects_that_event_only(transactional_db):
    """The net under the schemas: should an event that PostgreSQL cannot store get past them,
    it is rejected alone (DataError is never retried) and the rest of its batch applies."""
    good = todo_stream(user_id=1, length=1, rng=random.Random(14))[0]
    bad = todo_stream(user_id=1, length=1, rng=random.Random(15))[0]
    bad["data"] = {**bad["data"], "title": "nul \x00"}  # bypasses the schema, as a bug might
    rejected = apply_or_isolate(tables=services.LIVE, items=[item(good, 0), item(bad, 1)])
    assert [(r[0].envelope["eventId"], type(r[1])) for r in rejected] == [(bad["eventId"], RefusedByDatabaseError)]
    assert TodoView.objects.filter(id=good["aggregateId"]).exists()


def test_forged_values_postgresql_cannot_store_go_to_the_dlq_and_the_projection_goes_on(projection, event_topics):
    rng = random.Random(16)
    forged = []
    for change in ({"title": "a\x00b"}, {"createdAt": "9999-99-99T99:99:99Z"}, {"userId": "1" * 30}):
        event = todo_stream(user_id=1, length=1, rng=rng)[0]
        event["data"] = {**event["data"], **change}
        forged.append(event)
    good = todo_stream(user_id=1, length=1, rng=rng)[0]
    publish(resolve(TODO_EVENTS), [*forged, good], key="1")
    process = projection()
    wait_until(lambda: TodoView.objects.filter(id=good["aggregateId"]).exists(), what="the good event after them")
    assert {dict(m.headers())["dlq.error.class"] for m in consume_all(resolve(TODO_EVENTS_DLQ), 3)} == {
        b"InvalidEventError"}
    assert process.poll() is None


def test_snapshots_keep_working_forever(transactional_db):
    services.apply_items(tables=services.LIVE, items=[item(e, n) for n, e in enumerate(synthetic(3, length=2))])
    ids = [services.take_snapshot() for _ in range(10)]
    assert list(Snapshot.objects.order_by("id").values_list("id", flat=True)) == ids[-3:]
    assert set(SnapshotTodo.objects.values_list("snapshot_id", flat=True)) == set(ids[-3:])
    assert set(SnapshotEvent.objects.values_list("snapshot_id", flat=True)) == set(ids[-3:])


def test_periodic_snapshots_smaller_than_a_batch_leave_the_live_projection_unaffected(projection, event_topics):
    envelopes = synthetic(40, length=3, seed=17)
    publish(resolve(TODO_EVENTS), envelopes)
    projection("--max-batch-size", "10", PROJECTION_SNAPSHOT_EVERY="4")
    wait_until(lambda: applied_through() == len(envelopes), timeout=60, what="every event applied")
    assert Snapshot.objects.count() == 3, "many snapshots were taken, the newest three kept"
    assert Snapshot.objects.order_by("-id").first().event_count > 0
    live = services.checksum()
    replay(from_snapshot=True)
    assert services.checksum() == live


def test_replay_refuses_to_swap_in_a_rebuild_that_lacks_events(projection, event_topics):
    stream = todo_stream(user_id=1, length=3, rng=random.Random(18))
    publish(resolve(TODO_EVENTS), [stream[0], stream[2]])  # v2 never comes
    projection()
    wait_until(lambda: ParkedEvent.objects.exists(), what="v3 parked")
    live = services.checksum()
    with pytest.raises(ReplayRefusedError, match=r"wait for versions that never came.* v3 .*waits for v2"):
        replay()
    assert services.checksum() == live, "the live tables are unchanged"


def test_a_second_replay_is_refused_while_one_runs(projection, event_topics):
    publish(resolve(TODO_EVENTS), synthetic(20))
    projection()
    wait_until(lambda: applied_through() == 100, what="every event applied")
    in_progress, finish = threading.Event(), threading.Event()
    outcome = []

    def slow_progress(progress):
        in_progress.set()
        finish.wait(30)

    runner = in_thread(lambda: replay(batch_size=10, progress=slow_progress, progress_every_s=0), outcome)
    assert in_progress.wait(30)
    try:
        with pytest.raises(ReplayRunningError, match="a replay is already running since 20"):
            replay()
    finally:
        finish.set()
        runner.join(60)
    assert outcome and not isinstance(outcome[0], BaseException), outcome
    with psycopg.connect(db.conninfo(), autocommit=True) as check:
        assert check.execute("SELECT pg_try_advisory_lock(%s)", [db.AdvisoryLock.REPLAY]).fetchone()[0], "released"
