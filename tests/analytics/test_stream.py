"""The analytics stream against the real broker and database: window boundaries, grace and
late events, dead letters, and agreement with the batch recomputation (apps.analytics.verify)."""
import io
import json
import random
import re
from datetime import UTC, datetime, timedelta

from django.core.management import call_command
from django.db import connection

from apps.analytics.models import LateEvent
from polystack.streaming import topics
from polystack.streaming.topics import resolve
from tests import helpers
from tests.analytics.synthetic import Timeline
from tests.projections.synthetic import publish

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
USER = 4242


def rows(owner: int, window: str, metric: str) -> dict[tuple[str, str | None, str], int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT window_start, team_id, dim, value FROM analytics_window "
                       "WHERE owner_id = %s AND window_name = %s AND metric = %s", [owner, window, metric])
        return {(start.astimezone(UTC).strftime("%m-%d %H:%M:%S.%f")[:-3], team, dim): value
                for start, team, dim, value in cursor.fetchall()}


def test_windows_count_what_hand_computation_says_and_late_events_are_recorded(analytics):
    line = Timeline(users=[USER], rng=random.Random(1))
    first = line.create(USER, T0, priority="high")
    second = line.create(USER, T0 + timedelta(minutes=59, seconds=59, milliseconds=999), priority="low")
    todo = line.open[USER][0]
    todo.version += 1
    done = line.event(USER, "TodoCompleted", todo, T0 + timedelta(hours=1), {"completedAt": ""})
    later = line.create(USER, T0 + timedelta(hours=3), priority="medium")  # time moves to 13:00
    within_grace = line.create(USER, T0 + timedelta(hours=2, minutes=55), priority="medium")  # its hour is open
    late = line.create(USER, T0 + timedelta(hours=1, minutes=40), priority="medium")  # 11:40: closed at 12:10
    publish(resolve(topics.TODO_EVENTS), [first, second, done, later, within_grace, late])
    analytics.start()

    helpers.wait_until(analytics.agree, timeout=90, what="the batch recomputation to agree with the stream")

    # Tumbling: [10:00, 11:00) holds both creations (10:59:59.999 included); 11:00 opens the next.
    assert rows(USER, "hourly", "created") == {
        ("03-02 10:00:00.000", None, "high"): 1, ("03-02 10:00:00.000", None, "low"): 1,
        ("03-02 11:00:00.000", None, "high"): 0,
        ("03-02 12:00:00.000", None, "medium"): 1,  # 12:55, within the grace period
        ("03-02 13:00:00.000", None, "medium"): 1,
    }
    assert rows(USER, "hourly", "completion_ms") == {("03-02 11:00:00.000", None, "high"): 3_600_000}
    # 11:40 came when the stream was at 13:00: hour 11 had closed (12:00 + 10 min grace) ...
    assert rows(USER, "hourly", "created").get(("03-02 11:00:00.000", None, "medium")) is None
    # ... but the day had not: it counts there.
    assert rows(USER, "daily", "created") == {("03-02 00:00:00.000", None, "high"): 1,
                                              ("03-02 00:00:00.000", None, "low"): 1,
                                              ("03-02 00:00:00.000", None, "medium"): 3}
    # Hopping: windows of a day, six hours apart: four hold 10:00, the first opening yesterday 12:00.
    rolling = rows(USER, "rolling", "created")
    assert [start for (start, _, priority) in sorted(rolling) if priority == "high"] == [
        "03-01 12:00:00.000", "03-01 18:00:00.000", "03-02 00:00:00.000", "03-02 06:00:00.000"]
    assert ("03-01 06:00:00.000", None, "high") not in rolling  # ends today 06:00, before 10:00
    # Sliding: the hour up to each event, both ends included. 12:55 came after 13:00 but within
    # grace: it has its own window and joins 13:00's.
    assert rows(USER, "sliding", "events") == {
        ("03-02 09:00:00.000", None, ""): 1,
        ("03-02 09:59:59.999", None, ""): 2,
        ("03-02 10:00:00.000", None, ""): 3,  # [10:00, 11:00] holds 10:00, 10:59:59.999 and 11:00
        ("03-02 12:00:00.000", None, ""): 2,  # [12:00, 13:00]: 13:00, then 12:55
        ("03-02 11:55:00.000", None, ""): 1,  # [11:55, 12:55]; 11:40, late, has no window
    }
    recorded = {(e.window_name, e.window_start.astimezone(UTC).strftime("%H:%M")) for e in LateEvent.objects.all()}
    assert ("hourly", "11:00") in recorded
    assert ("sliding", "10:40") in recorded  # the late event's own hour, gone entirely
    assert ("rolling", "12:00") in recorded  # of the four days holding 11:40, the one that ended at 12:00
    assert ("daily", "00:00") not in recorded
    out = io.StringIO()
    call_command("analytics", "verify", "--from", "2026-03-02T00:00Z", stdout=out)
    assert "6 events read" in out.getvalue() and "the stream and the batch agree" in out.getvalue()


def _dead_letters(expected: int) -> list:
    return helpers.consume_all(resolve(topics.TODO_EVENTS_DLQ), expected, timeout=60)


def test_what_the_windows_cannot_place_goes_to_the_dlq_and_the_stream_goes_on(analytics):
    line = Timeline(users=[USER], rng=random.Random(2))
    good = line.create(USER, T0, priority="medium")
    future = line.create(USER, datetime.now(UTC) + timedelta(days=2))
    wrong_key = line.create(USER, T0 + timedelta(minutes=1))
    after = line.create(USER, T0 + timedelta(minutes=2), priority="medium")
    todo_events = resolve(topics.TODO_EVENTS)
    publish(todo_events, [good])
    publish(todo_events, [b"{not json", json.dumps({"eventType": "TodoCreated"}).encode()], key=str(USER))
    publish(todo_events, [future])
    publish(todo_events, [wrong_key], key="4243")
    publish(todo_events, [after])
    analytics.start()

    letters = _dead_letters(4)
    reasons = sorted(dict(letter.headers())["dlq.error.class"].decode() for letter in letters)
    assert reasons == ["InvalidEventError", "NonRetriableError", "UnwindowableEventError", "UnwindowableEventError"]
    headers = dict(letters[0].headers())
    assert headers["dlq.consumer.group"].decode() == analytics.group
    assert headers["dlq.original.topic"].decode() == todo_events
    assert {letter.value() for letter in letters} >= {b"{not json"}
    helpers.wait_until(lambda: rows(USER, "hourly", "created").get(("03-02 10:00:00.000", None, "medium")) == 2,
                       timeout=60, what="the event after the poison ones (with the first)")
    helpers.wait_until(analytics.agree, timeout=60, what="the stream to agree with the batch (which skips the same)")
    assert analytics.stream.poll() is None, "the role is still running"


def _timeline(users: int, count: int, seed: int) -> list[dict]:
    from tests.analytics.synthetic import activity

    team = "0b5e7c1e-0000-4000-8000-000000000002"
    ids = list(range(5000, 5000 + users))
    return activity(users=ids, count=count, start=T0, span=timedelta(days=5), seed=seed, teams={team: ids[:5]})


def test_a_killed_role_restores_its_state_from_the_changelog_and_a_restarted_one_from_its_folder(analytics):
    todo_events = resolve(topics.TODO_EVENTS)
    envelopes = _timeline(users=40, count=5000, seed=3)
    publish(todo_events, envelopes[:3000])
    analytics.start()
    helpers.wait_until(lambda: _stored_rows() > 500, timeout=60, what="the stream to be under way")
    analytics.stream.kill()  # SIGKILL: no clean shutdown, a transaction perhaps left open
    analytics.stream.wait()
    import shutil

    shutil.rmtree(analytics.state_dir)  # the disk is gone too
    publish(todo_events, envelopes[3000:4000])
    analytics.start_stream()
    helpers.wait_until(lambda: helpers.caught_up(analytics.group, todo_events), timeout=120,
                       what="the restarted role to reach the end of todo-events")
    helpers.wait_until(analytics.agree, timeout=60, what="the restored stream to agree with the batch")
    restored = [int(n) for n in re.findall(r"keys, (\d+) changelog records restored", analytics.log())]
    assert sum(restored) > 0, "the second start restored its state from the changelog"

    code, _, _ = helpers.stop(analytics.stream)  # now a clean stop, the state folder kept
    assert code == 0
    publish(todo_events, envelopes[4000:])
    analytics.start_stream()
    helpers.wait_until(lambda: helpers.caught_up(analytics.group, todo_events), timeout=120, what="the rest")
    helpers.wait_until(analytics.agree, timeout=60, what="the stream to agree with the batch")
    third_start = analytics.log().split("consuming ")[-1]
    restores = re.findall(r"keys, (\d+) changelog records restored", third_start)
    assert restores and set(restores) == {"0"}, "the kept local state needed nothing from the changelog"


def _stored_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM analytics_window")
        return cursor.fetchone()[0]


def test_a_fresh_group_over_a_hundred_thousand_events_of_many_users_drops_nothing_as_late(analytics):
    """Backfill: every partition full of history, many users interleaved in each; a new group
    reads it all. Per-user event time means no user's events are late for another's sake."""
    from tests.analytics.synthetic import activity

    todo_events = resolve(topics.TODO_EVENTS)
    users = list(range(20_000, 20_500))
    teams = {"0b5e7c1e-0000-4000-8000-000000000004": users[:40]}
    publish(todo_events, activity(users=users, count=100_000, start=T0, span=timedelta(days=20), seed=7, teams=teams))
    analytics.start()
    helpers.wait_until(lambda: helpers.caught_up(analytics.group, todo_events), timeout=240,
                       what="the processor to read the 100,000 events")
    analytics.quiet_s = 2.0  # the sink pauses between big batches; recomputing 100,000 events takes seconds
    helpers.wait_until(analytics.agree, timeout=240, what="the stream to agree with the batch")
    from apps.analytics.models import LateEvent

    assert not LateEvent.objects.filter(topic=todo_events).exists(), "nothing was late"
