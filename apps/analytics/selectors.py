"""Reads of the analytics app: every metric over the time series, for a time range, a bucket
and a scope. Totals over users and teams are sums of the per-user windows the stream wrote.

Every metric answers the same shape — series of points, one series per breakdown — so the
API, the dashboard's charts and the CSV and PDF exports handle them all alike.
"""
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection

from apps.analytics import facts, services, windows
from apps.analytics.models import LateEvent
from apps.projections.models import TodoView
from apps.todos.models import Team

BUCKETS = ("hour", "day", "week", "month")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STAFF_TTL_S = 30.0
_staff: tuple[float, frozenset[int]] = (0.0, frozenset())


def staff_ids() -> frozenset[int]:
    """Active staff users (they may look at everyone's analytics), re-read every 30 s."""
    global _staff
    read_at, ids = _staff
    if time.monotonic() - read_at > _STAFF_TTL_S:
        ids = frozenset(get_user_model().objects.filter(is_staff=True, is_active=True).values_list("pk", flat=True))
        _staff = (time.monotonic(), ids)
    return ids


@dataclass(frozen=True)
class Scope:
    """Whose todos: the user's own ("own"), a team's ("team", team_id), or everyone's ("all")."""

    kind: str
    user_id: int
    team_id: str | None = None

    def sql(self, *, owner: str = "owner_id", team: str = "team_id") -> tuple[str, list]:
        if self.kind == "own":
            return f"{owner} = %s", [self.user_id]
        if self.kind == "team":
            return f"{team} = %s", [self.team_id]
        return "TRUE", []

    @property
    def label(self) -> str:
        return f"team:{self.team_id}" if self.kind == "team" else self.kind


@dataclass(frozen=True)
class Query:
    start: datetime  # aligned to the bucket
    end: datetime  # exclusive, aligned to the bucket
    bucket: str
    scope: Scope

    @property
    def window(self) -> str:
        """Hours are read from the hourly windows; days, weeks and months from the daily ones."""
        return "hourly" if self.bucket == "hour" else "daily"

    @property
    def bucket_sql(self) -> str:
        """The bucket of a window: its start (windows are as long as the bucket or shorter, and
        aligned to it)."""
        return "window_start" if self.bucket == "hour" else self.bucket_of("window_start")

    def bucket_of(self, column: str) -> str:
        """The bucket of any moment, in UTC."""
        return f"date_trunc('{self.bucket}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"

    def buckets(self) -> list[datetime]:
        moments, moment = [], self.start
        while moment < self.end:
            moments.append(moment)
            moment = bucket_after(moment, self.bucket)
        return moments


def bucket_floor(moment: datetime, bucket: str) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if bucket == "hour":
        return moment
    moment = moment.replace(hour=0)
    if bucket == "week":
        return moment - timedelta(days=moment.weekday())
    if bucket == "month":
        return moment.replace(day=1)
    return moment


def bucket_after(moment: datetime, bucket: str) -> datetime:
    if bucket == "month":
        return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
    return moment + {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}[bucket]


def bucket_count(start: datetime, end: datetime, bucket: str) -> int:
    """Roughly how many buckets the range holds (for the API's limit)."""
    return int((end - start) / {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7),
                                "month": timedelta(days=28)}[bucket]) + 1


@dataclass
class Result:
    metric: str
    unit: str
    query: Query
    series: dict[str, dict[datetime | int, float | int | None]] = field(default_factory=dict)
    x: str = "time"  # or "hourOfDay" (peak hours), or "pair" (assignments)
    current: dict[str, int] | None = None  # health: the values now

    def as_json(self) -> dict[str, Any]:
        def key(x):
            return x.isoformat().replace("+00:00", "Z") if isinstance(x, datetime) else x

        answer = {
            "metric": self.metric, "unit": self.unit, "x": self.x,
            "from": key(self.query.start), "to": key(self.query.end),
            "bucket": self.query.bucket, "scope": self.query.scope.label,
            "series": [{"label": label, "points": [{"t": key(t), "value": v} for t, v in points.items()]}
                       for label, points in self.series.items()],
        }
        if self.current is not None:
            answer["current"] = self.current
        return answer


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _sums(query: Query, metrics: tuple[str, ...], *, window: str | None = None) -> list[tuple]:
    """(bucket, metric, dim, sum of value) over the query's windows."""
    where, params = query.scope.sql()
    return _rows(
        f"SELECT {query.bucket_sql} AS t, metric, dim, sum(value) FROM analytics_window "
        "WHERE window_name = %s AND metric = ANY(%s) AND window_start >= %s AND window_start < %s "
        f"AND {where} GROUP BY 1, 2, 3",
        [window or query.window, list(metrics), query.start, query.end, *params])


def _zeros(query: Query) -> dict[datetime, int]:
    return {moment: 0 for moment in query.buckets()}


def _by_priority(query: Query, rows: list[tuple], metric: str) -> dict[str, dict]:
    series = {"all": _zeros(query)}
    for t, row_metric, priority, value in rows:
        if row_metric == metric:
            points = series.setdefault(priority, _zeros(query))
            points[t] = points.get(t, 0) + int(value)
            series["all"][t] = series["all"].get(t, 0) + int(value)
    return series


def _ratio(numerators: dict[str, dict], denominators: dict[str, dict], scale: float = 1.0) -> dict[str, dict]:
    """numerator ÷ denominator per series and bucket; None where the denominator is 0."""
    return {label: {t: (round(numerators.get(label, {}).get(t, 0) / denominator * scale, 4) if denominator else None)
                    for t, denominator in points.items()}
            for label, points in denominators.items()}


def completed(query: Query) -> Result:
    """Todos completed per bucket, in total and by priority."""
    return Result("completed", "todos", query, _by_priority(query, _sums(query, (facts.M_COMPLETED,)), facts.M_COMPLETED))


def completion_time(query: Query) -> Result:
    """Average time from creation to completion of the todos completed in each bucket, in hours."""
    rows = _sums(query, (facts.M_COMPLETION_MS, facts.M_COMPLETION_N))
    total = _by_priority(query, rows, facts.M_COMPLETION_MS)
    count = _by_priority(query, rows, facts.M_COMPLETION_N)
    return Result("completion-time", "hours", query, _ratio(total, count, scale=1 / 3_600_000))


def completion_rate(query: Query, *, by: str = "priority") -> Result:
    """Completed ÷ created in each bucket, by priority or by user (the todos' owner)."""
    if by == "user":
        where, params = query.scope.sql()
        rows = _rows(
            f"SELECT {query.bucket_sql}, owner_id::text, metric, sum(value) FROM analytics_window "
            "WHERE window_name = %s AND metric = ANY(%s) AND window_start >= %s AND window_start < %s "
            f"AND {where} GROUP BY 1, 2, 3",
            [query.window, [facts.M_CREATED, facts.M_COMPLETED], query.start, query.end, *params])
        done, made = defaultdict(lambda: _zeros(query)), defaultdict(lambda: _zeros(query))
        for t, owner, metric, value in rows:
            (done if metric == facts.M_COMPLETED else made)[owner][t] += int(value)
        return Result("completion-rate", "ratio", query, _ratio(done, made))
    rows = _sums(query, (facts.M_CREATED, facts.M_COMPLETED))
    return Result("completion-rate", "ratio", query, _ratio(_by_priority(query, rows, facts.M_COMPLETED),
                                                             _by_priority(query, rows, facts.M_CREATED)))


def rolling_completion_rate(query: Query) -> Result:
    """Completed ÷ created over the 24 hours through hour t, every six hours (the hopping
    windows: the point of hour t is the window that ends when hour t does)."""
    where, params = query.scope.sql()
    rows = _rows(
        "SELECT window_end - interval '1 hour', metric, dim, sum(value) FROM analytics_window "
        "WHERE window_name = 'rolling' AND metric = ANY(%s) AND window_start >= %s AND window_start < %s "
        f"AND {where} GROUP BY 1, 2, 3",
        [[facts.M_CREATED, facts.M_COMPLETED], query.start - timedelta(hours=23), query.end - timedelta(hours=23),
         *params])
    hourly = Query(query.start, query.end, "hour", query.scope)
    series = _ratio(_by_priority(hourly, rows, facts.M_COMPLETED), _by_priority(hourly, rows, facts.M_CREATED))
    step, hour = timedelta(milliseconds=windows.BY_NAME["rolling"].step_ms), timedelta(hours=1)
    ends = {t for t in hourly.buckets() if (t + hour - _EPOCH) % step == timedelta(0)}  # hours a window ends with
    return Result("rolling-completion-rate", "ratio", hourly,
                  {label: {t: v for t, v in points.items() if t in ends} for label, points in series.items()})


def active_users(query: Query) -> Result:
    """How many different users acted (created, changed, completed) on the scope's todos."""
    where, params = query.scope.sql()
    rows = _rows(
        f"SELECT {query.bucket_sql}, count(DISTINCT dim) FROM analytics_window WHERE window_name = %s "
        "AND metric = %s AND window_start >= %s AND window_start < %s "
        f"AND {where} GROUP BY 1", [query.window, facts.M_ACTIVE, query.start, query.end, *params])
    series = _zeros(query)
    series.update({t: count for t, count in rows})
    return Result("active-users", "users", query, {"active users": series})


def peak_hours(query: Query) -> Result:
    """Todos created per hour of the day (UTC) over the whole range: when people plan."""
    where, params = query.scope.sql()
    rows = _rows(
        "SELECT extract(hour FROM window_start AT TIME ZONE 'UTC')::int, sum(value) FROM analytics_window "
        "WHERE window_name = 'hourly' AND metric = %s AND window_start >= %s AND window_start < %s "
        f"AND {where} GROUP BY 1", [facts.M_CREATED, query.start, query.end, *params])
    series = {hour: 0 for hour in range(24)}
    series.update({hour: int(value) for hour, value in rows})
    return Result("peak-hours", "todos", query, {"created": series}, x="hourOfDay")


def todos_per_user(query: Query) -> Result:
    """Todos created per user who created any, in each bucket."""
    where, params = query.scope.sql()
    rows = _rows(
        f"SELECT {query.bucket_sql}, sum(value), count(DISTINCT owner_id) FROM analytics_window "
        "WHERE window_name = %s AND metric = %s AND value > 0 AND window_start >= %s AND window_start < %s "
        f"AND {where} GROUP BY 1", [query.window, facts.M_CREATED, query.start, query.end, *params])
    series: dict = {t: None for t in query.buckets()}
    series.update({t: round(int(total) / users, 4) for t, total, users in rows if users})
    return Result("todos-per-user", "todos", query, {"created per user": series})


def assignments(query: Query, *, top: int = 10) -> Result:
    """Who assigns to whom: the `top` busiest pairs, with their assignments in each bucket."""
    totals: dict[str, int] = defaultdict(int)
    per_bucket: dict[str, dict] = defaultdict(lambda: _zeros(query))
    for t, _, pair, value in _sums(query, (facts.M_ASSIGNED,)):
        totals[pair] += int(value)
        per_bucket[pair][t] += int(value)
    names = _usernames({int(user) for pair in totals for user in pair.split(">")})
    busiest = sorted(totals, key=lambda pair: (-totals[pair], pair))[:top]
    series = {" → ".join(names.get(int(user), user) for user in pair.split(">")): per_bucket[pair] for pair in busiest}
    return Result("assignments", "assignments", query, series)


def activity(query: Query) -> Result:
    """The busiest 60 minutes of each bucket: the most events one user made in any hour that
    ended in it (the sliding windows), and how many users were active in the bucket."""
    where, params = query.scope.sql()
    rows = _rows(
        f"SELECT {query.bucket_of('window_end')}, max(events) FROM (SELECT owner_id, window_end, sum(value) AS events "
        "FROM analytics_window WHERE window_name = 'sliding' AND metric = %s "
        "AND window_start >= %s AND window_start < %s "
        f"AND {where} GROUP BY 1, 2) w GROUP BY 1",
        [facts.M_EVENTS, query.start - timedelta(hours=1), query.end, *params])
    series = _zeros(query)
    series.update({t: int(value) for t, value in rows if t in series})
    return Result("activity", "events", query, {"busiest 60 minutes": series})


def late_events(query: Query) -> Result:
    """Events that came after their window's grace period, by window, per bucket of their time."""
    events = LateEvent.objects.filter(occurred_at__gte=query.start, occurred_at__lt=query.end)
    if query.scope.kind == "own":
        events = events.filter(owner_id=query.scope.user_id)
    elif query.scope.kind == "team":
        members = Team.members.through.objects.filter(team_id=query.scope.team_id).values_list("user_id", flat=True)
        events = events.filter(owner_id__in=members)
    series: dict[str, dict] = defaultdict(lambda: _zeros(query))
    for window, occurred in events.values_list("window_name", "occurred_at")[:100_000]:
        series[window][bucket_floor(occurred, query.bucket)] += 1
    return Result("late-events", "events", query, dict(series))


def health(query: Query, *, aging_days: int) -> Result:
    """Overdue, aging, unassigned and high-priority open todos: now (from the projection) and
    their trend (the samples, the latest of each bucket)."""
    where, params = query.scope.sql(owner="user_id")
    filters = services.health_filters(at="%s", aging_since="%s")
    now = datetime.now(UTC)
    columns = ", ".join(f"count(*) FILTER (WHERE {condition})" for condition in filters.values())
    condition_params = [now, now - timedelta(days=aging_days)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {TodoView._meta.db_table} WHERE NOT completed AND deleted_at IS NULL "
                       f"AND {where}", [*condition_params, *params])
        current = dict(zip(filters, cursor.fetchone()))
    # The trend: each bucket's last sampling slot (any rows at all mark a slot as sampled).
    last = dict(_rows(f"SELECT {query.bucket_of('sampled_at')}, max(sampled_at) FROM analytics_health_sample "
                      "WHERE sampled_at >= %s AND sampled_at < %s GROUP BY 1", [query.start, query.end]))
    where, params = query.scope.sql()
    totals = {(at, metric): int(value) for at, metric, value in _rows(
        "SELECT sampled_at, metric, sum(value) FROM analytics_health_sample WHERE sampled_at = ANY(%s) "
        f"AND {where} GROUP BY 1, 2", [list(last.values()), *params])}
    series: dict[str, dict] = {}
    for metric in services.HEALTH_METRICS:
        series[metric] = {t: None for t in query.buckets()}
        series[metric].update({t: totals.get((at, metric), 0) for t, at in last.items()})
    return Result("health", "todos", query, series, current=current)


def _usernames(ids: set[int]) -> dict[int, str]:
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username")) if ids else {}


METRICS = {
    "completed": completed,
    "completion-time": completion_time,
    "completion-rate": completion_rate,
    "rolling-completion-rate": rolling_completion_rate,
    "active-users": active_users,
    "peak-hours": peak_hours,
    "todos-per-user": todos_per_user,
    "assignments": assignments,
    "activity": activity,
    "health": health,
    "late-events": late_events,
}
