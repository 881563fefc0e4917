"""The analytics API over rows the stream would have written: every metric's number on
hand-computed data, scopes and their permissions, bad input, exports; and the time series'
partitions (pruning, retention) and health samples, on the real PostgreSQL."""
import csv
import io
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.analytics import partitions, services
from apps.analytics.services import WindowRow
from apps.analytics.tasks import sampling_slot
from apps.projections.models import TodoView
from tests import helpers
from tests.factories import teammates

H = timedelta(hours=1)


@pytest.fixture
def clean(db):
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE analytics_window, analytics_health_sample")


@pytest.fixture
def people(user_factory):
    alice, bob, carol = user_factory(username="alice"), user_factory(username="bob"), user_factory(username="carol")
    team = teammates(alice, bob, name="Platform")
    return alice, bob, carol, team


def at(hours: float) -> datetime:
    """Hours after 2026-03-02 00:00 UTC, a Monday."""
    return datetime(2026, 3, 2, tzinfo=UTC) + hours * H


def rows(owner, window, start, metric, values: dict, *, team=None, length=H) -> list[WindowRow]:
    return [WindowRow(window, owner.pk, str(team.id) if team else None, metric, dim, start, start + length, value)
            for dim, value in values.items()]


def get(client, metric, **params):
    answer = client.get(f"/api/analytics/{metric}/", {"from": at(0).isoformat(), "to": at(48).isoformat(), **params})
    return answer


def series(answer) -> dict:
    return {s["label"]: {p["t"]: p["value"] for p in s["points"]} for s in answer.json()["series"]}


def test_completions_rates_and_times_add_up_over_users_teams_and_buckets(clean, people):
    alice, bob, carol, team = people
    services.window_rows_store(rows=[
        *rows(alice, "hourly", at(9), "created", {"high": 2, "low": 1}),
        *rows(alice, "hourly", at(9), "completed", {"high": 1}),
        *rows(alice, "hourly", at(9), "completion_ms", {"high": 2 * 3_600_000}),
        *rows(alice, "hourly", at(9), "completion_n", {"high": 1}),
        *rows(bob, "hourly", at(9), "created", {"high": 1}, team=team),
        *rows(bob, "hourly", at(10), "completed", {"high": 1}, team=team),
        *rows(bob, "hourly", at(10), "completion_ms", {"high": 4 * 3_600_000}, team=team),
        *rows(bob, "hourly", at(10), "completion_n", {"high": 1}, team=team),
        *rows(carol, "hourly", at(9), "created", {"low": 5}),
        *rows(alice, "daily", at(0), "completed", {"high": 1}, length=24 * H),
        *rows(bob, "daily", at(0), "completed", {"high": 1}, team=team, length=24 * H),
        *rows(bob, "daily", at(24), "completed", {"low": 3}, team=team, length=24 * H),
    ])
    alice_api, staff = helpers.api_client(alice), helpers.api_client(carol)
    own = series(get(alice_api, "completed", bucket="hour"))
    assert own["all"]["2026-03-02T09:00:00Z"] == 1 and own["high"]["2026-03-02T09:00:00Z"] == 1
    assert own["all"]["2026-03-02T10:00:00Z"] == 0, "bob's completion is his, and alice's scope is her own"
    assert len(own["all"]) == 48, "every hour of the range, zero when nothing happened"
    teams = series(get(alice_api, "completed", bucket="hour", scope=f"team:{team.id}"))
    assert teams["all"]["2026-03-02T10:00:00Z"] == 1 and teams["all"]["2026-03-02T09:00:00Z"] == 0
    per_day = series(get(alice_api, "completed", bucket="day", scope=f"team:{team.id}"))
    assert per_day["all"] == {"2026-03-02T00:00:00Z": 1, "2026-03-03T00:00:00Z": 3}
    rate = series(get(alice_api, "completion-rate", bucket="hour"))
    assert rate["all"]["2026-03-02T09:00:00Z"] == pytest.approx(1 / 3, abs=1e-4)
    assert rate["high"]["2026-03-02T09:00:00Z"] == 0.5 and rate["low"]["2026-03-02T09:00:00Z"] == 0
    assert rate["all"]["2026-03-02T11:00:00Z"] is None, "no todo created: no rate, not zero"
    hours = series(get(alice_api, "completion-time", bucket="hour"))
    assert hours["high"]["2026-03-02T09:00:00Z"] == 2.0
    carol.is_staff = True
    carol.save()
    everyone = series(get(staff, "completion-time", bucket="hour", scope="all"))["all"]
    assert (everyone["2026-03-02T09:00:00Z"], everyone["2026-03-02T10:00:00Z"]) == (2.0, 4.0)
    by_user = series(get(staff, "completion-rate", bucket="hour", scope="all", by="user"))
    assert by_user[str(carol.pk)]["2026-03-02T09:00:00Z"] == 0, "created five, completed none"
    assert by_user[str(alice.pk)]["2026-03-02T09:00:00Z"] == pytest.approx(1 / 3, abs=1e-4)


def test_productivity_active_users_peak_hours_per_user_and_assignments(clean, people):
    alice, bob, carol, team = people
    services.window_rows_store(rows=[
        *rows(alice, "hourly", at(9), "active", {str(alice.pk): 3, str(bob.pk): 1}),
        *rows(alice, "hourly", at(9), "created", {"high": 2}),
        *rows(bob, "hourly", at(9), "active", {str(bob.pk): 2}, team=team),
        *rows(bob, "hourly", at(9), "created", {"low": 1}, team=team),
        *rows(alice, "hourly", at(33), "created", {"low": 4}),
        *rows(alice, "hourly", at(9), "assigned", {f"{alice.pk}>{bob.pk}": 2}),
        *rows(bob, "hourly", at(9), "assigned", {f"{bob.pk}>{alice.pk}": 1}, team=team),
    ])
    carol.is_staff = True
    carol.save()
    staff = helpers.api_client(carol)
    assert series(get(staff, "active-users", bucket="hour", scope="all"))["active users"]["2026-03-02T09:00:00Z"] == 2
    peak = series(get(staff, "peak-hours", scope="all"))["created"]
    assert peak[9] == 7 and peak[10] == 0 and len(peak) == 24
    per_user = series(get(staff, "todos-per-user", bucket="hour", scope="all"))["created per user"]
    assert {t: v for t, v in per_user.items() if v is not None} == {"2026-03-02T09:00:00Z": 1.5,
                                                                   "2026-03-03T09:00:00Z": 4.0}
    pairs = series(get(staff, "assignments", bucket="hour", scope="all"))
    assert pairs["alice → bob"]["2026-03-02T09:00:00Z"] == 2 and pairs["bob → alice"]["2026-03-02T09:00:00Z"] == 1
    assert list(pairs) == ["alice → bob", "bob → alice"], "busiest pair first"


def test_sliding_activity_is_the_busiest_hour_of_one_user_and_rolling_rate_the_hopping_days(clean, people):
    alice, bob, carol, team = people
    services.window_rows_store(rows=[
        WindowRow("sliding", alice.pk, None, "events", "", at(9), at(10), 3),
        WindowRow("sliding", alice.pk, str(team.id), "events", "", at(9), at(10), 2),  # the same hour: 5 in all
        WindowRow("sliding", alice.pk, None, "events", "", at(9.5), at(10.5), 4),
        WindowRow("sliding", bob.pk, None, "events", "", at(30), at(31), 7),
        WindowRow("sliding", alice.pk, None, "events", "", at(11.25), at(12.25), 2),  # ends 12:15: hour 12
        *rows(alice, "rolling", at(-18), "created", {"high": 4}, length=24 * H),  # the day through 05:00-06:00
        *rows(alice, "rolling", at(-18), "completed", {"high": 1}, length=24 * H),
    ])
    alice_api = helpers.api_client(alice)
    busiest = series(get(alice_api, "activity", bucket="day"))["busiest 60 minutes"]
    assert busiest == {"2026-03-02T00:00:00Z": 5, "2026-03-03T00:00:00Z": 0}
    hourly = series(get(alice_api, "activity", bucket="hour"))["busiest 60 minutes"]
    assert (hourly["2026-03-02T10:00:00Z"], hourly["2026-03-02T12:00:00Z"]) == (5, 2)
    rolling = series(get(alice_api, "rolling-completion-rate"))
    assert rolling["all"]["2026-03-02T05:00:00Z"] == 0.25 and rolling["all"]["2026-03-02T11:00:00Z"] is None
    assert "2026-03-02T06:00:00Z" not in rolling["all"], "a point where a window ends, every six hours"


def test_scopes_are_checked_and_bad_queries_are_400(clean, people):
    alice, bob, carol, team = people
    carol_api = helpers.api_client(carol)
    assert get(carol_api, "completed", scope=f"team:{team.id}").status_code == 403
    assert get(carol_api, "completed", scope="all").status_code == 403
    assert get(helpers.api_client(alice), "completed", scope=f"team:{team.id}").status_code == 200
    from rest_framework.test import APIClient

    assert get(APIClient(), "completed").status_code == 401
    for params in ({"bucket": "year"}, {"scope": "team:nope"}, {"from": "yesterday"}, {"unknown": "1"},
                   {"from": at(10).isoformat(), "to": at(9).isoformat()}, {"bucket": "hour", "from": "1970-01-01T00:00Z"},
                   {"days": "0"}, {"top": "500"}, {"from": "0001-01-01T00:00:00Z"}, {"to": "9999-12-31T23:59:59Z"}):
        answer = carol_api.get("/api/analytics/completed/", params)
        assert answer.status_code == 400, (params, answer.status_code, answer.content[:200])
    assert carol_api.get("/api/analytics/nope/").status_code == 404
    assert carol_api.get("/api/analytics/report/", {"as": "xls"}).status_code == 400
    index = carol_api.get("/api/analytics/").json()
    assert {m["name"] for m in index["metrics"]} >= {"completed", "health", "late-events", "activity"}


def test_the_defaults_show_the_last_seven_days_per_day_up_to_the_bucket_in_progress(clean, people):
    alice = people[0]
    answer = helpers.api_client(alice).get("/api/analytics/completed/").json()
    assert answer["bucket"] == "day" and answer["scope"] == "own"
    assert datetime.fromisoformat(answer["to"]) > timezone.now(), "today is in it"
    assert len(answer["series"][0]["points"]) in (7, 8)


def test_exports_carry_the_api_numbers(clean, people):
    alice = people[0]
    services.window_rows_store(rows=rows(alice, "hourly", at(9), "completed", {"high": 2}))
    api = helpers.api_client(alice)
    params = {"from": at(0).isoformat(), "to": at(24).isoformat(), "bucket": "hour"}
    answer = api.get("/api/analytics/report/", {**params, "as": "csv"})
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(answer.content.decode())))
    completed = {(r["series"], r["t"]): r["value"] for r in table if r["metric"] == "completed"}
    assert completed[("high", "2026-03-02T09:00:00Z")] == "2"
    assert completed[("all", "2026-03-02T10:00:00Z")] == "0"
    pdf = api.get("/api/analytics/report/", {**params, "as": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True, check=True).stdout.decode()
    assert "completed (todos)" in text and "2026-03-02 09:00" in text


def test_a_time_range_reads_only_its_partitions_and_retention_drops_old_ones(clean, people, settings):
    alice = people[0]
    now = timezone.now()
    old, recent = now - timedelta(days=60), now - timedelta(days=1)
    services.window_rows_store(rows=[WindowRow("hourly", alice.pk, None, "created", "low", old, old + H, 1),
                                     WindowRow("hourly", alice.pk, None, "created", "low", recent, recent + H, 1)])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN SELECT sum(value) FROM analytics_window WHERE window_name = 'hourly' "
                       "AND metric = 'created' AND window_start >= %s AND window_start < %s", [recent - H, now])
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert partitions.partition_name("analytics_window", partitions.period_start(recent)) in plan
    assert partitions.partition_name("analytics_window", partitions.period_start(old)) not in plan
    settings.ANALYTICS_RETENTION_DAYS = 30
    dropped = partitions.drop_expired(now)
    assert partitions.partition_name("analytics_window", partitions.period_start(old)) in dropped
    assert partitions.partition_name("analytics_window", partitions.period_start(recent)) not in dropped
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM analytics_window")
        assert cursor.fetchone()[0] == 1
    # A row older than the retention period is not written (its partition is gone for good).
    assert services.window_rows_store(rows=[WindowRow("hourly", alice.pk, None, "created", "low", old, old + H, 1)]) == 0


def test_health_is_sampled_from_the_projection_and_shown_now_and_as_a_trend(clean, people, settings):
    alice, bob, carol, team = people
    now = timezone.now()
    base = {"title": "t", "description": "", "completed": False, "created_at": now - timedelta(days=30),
            "version": 1}
    TodoView.objects.bulk_create([
        TodoView(id="00000000-0000-4000-8000-000000000001", user_id=alice.pk, priority="urgent",
                 due_date=now - H, updated_at=now - timedelta(days=10), **base),
        TodoView(id="00000000-0000-4000-8000-000000000002", user_id=alice.pk, priority="low", assigned_to=bob.pk,
                 updated_at=now, team_id=team.id, **base),
        TodoView(id="00000000-0000-4000-8000-000000000003", user_id=alice.pk, priority="high", updated_at=now,
                 **{**base, "completed": True}),
    ])
    slot = sampling_slot(now)
    assert services.health_sample_record(at=slot) > 0
    services.health_sample_record(at=slot)  # a repeated run rewrites its slot
    answer = helpers.api_client(alice).get("/api/analytics/health/", {"from": (now - 2 * H).isoformat(),
                                                                        "bucket": "hour"}).json()
    assert answer["current"] == {"overdue": 1, "aging": 1, "unassigned": 1, "high_backlog": 1}
    trend = {s["label"]: [p["value"] for p in s["points"] if p["value"] is not None] for s in answer["series"]}
    assert trend == {"overdue": [1], "aging": [1], "unassigned": [1], "high_backlog": [1]}
    fresh = helpers.api_client(alice).get("/api/analytics/health/", {"days": "40"}).json()
    assert fresh["current"]["aging"] == 0
