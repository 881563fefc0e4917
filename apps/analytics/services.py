"""Writes of the analytics app: window results into the time series, late events, health samples."""
import logging
from collections.abc import Iterable
from typing import NamedTuple
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection

from apps.analytics import partitions
from apps.analytics.models import LateEvent
from apps.projections.models import TodoView

logger = logging.getLogger("apps.analytics")


def from_ms(epoch_ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)


_INCOMING = "analytics_window_incoming"
_COLUMNS = "window_name, owner_id, team_id, metric, dim, window_start, window_end, value"  # WindowRow's order


class WindowRow(NamedTuple):
    window_name: str
    owner_id: int
    team_id: str | None
    metric: str
    dim: str
    window_start: datetime
    window_end: datetime
    value: int

    @property
    def key(self) -> tuple:
        return self.window_name, self.metric, self.owner_id, self.window_start, self.team_id, self.dim


def window_rows_store(*, rows: Iterable[WindowRow]) -> int:
    """Upsert window results: each row is a window's absolute value, so storing one again (a
    redelivery, a replay) changes nothing. Rows older than the retention period are skipped.
    Returns how many rows were written."""
    cutoff = partitions.retention_cutoff()
    latest: dict[tuple, WindowRow] = {}
    for row in rows:
        if row.window_start >= cutoff:
            latest[row.key] = row  # one statement may not update a row twice: the last wins
    if not latest:
        return 0
    rows = list(latest.values())

    def upsert() -> int:
        # COPY into a scratch table, then one INSERT … ON CONFLICT from it: twice the rows a
        # second of the same upsert over unnest(%s) arrays, whose adaptation was half its time.
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_INCOMING} (LIKE analytics_window) ON COMMIT DELETE ROWS")
            cursor.execute(f"DELETE FROM {_INCOMING}")  # an earlier write in this transaction left its rows
            with connection.connection.cursor() as raw, raw.copy(f"COPY {_INCOMING} ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO analytics_window ({_COLUMNS}) SELECT {_COLUMNS} FROM {_INCOMING} "
                "ON CONFLICT (window_name, metric, owner_id, window_start, team_id, dim) "
                "DO UPDATE SET value = EXCLUDED.value, window_end = EXCLUDED.window_end",
            )
        return len(rows)

    return partitions.write("analytics_window", {row.window_start for row in rows}, upsert)


def late_events_record(*, events: list[dict]) -> int:
    """Record events dropped from a window as late (each once, however often it is told)."""
    if not events:
        return 0
    created = LateEvent.objects.bulk_create([
        LateEvent(window_name=e["window"], topic=e["topic"], partition=e["partition"], offset=e["offset"],
                  window_start=from_ms(e["range_ms"][0]), window_end=from_ms(e["range_ms"][1]),
                  owner_id=e["owner_id"], occurred_at=from_ms(e["occurred_ms"]), late_by_ms=e["late_by_ms"])
        for e in events], ignore_conflicts=True)
    for e in events:
        logger.warning("late event %s[%d]@%d dropped from the %s window at %s, %d ms after its grace period",
                       e["topic"], e["partition"], e["offset"], e["window"], from_ms(e["range_ms"][0]).isoformat(),
                       e["late_by_ms"])
    return len(created)


HEALTH_METRICS = ("overdue", "aging", "unassigned", "high_backlog")


def health_filters(*, at: str = "%(at)s", aging_since: str = "%(aging_since)s") -> dict[str, str]:
    """The health metrics as SQL conditions on an open todo of the projection (one definition
    for the samples and for the API's current values)."""
    return {
        "overdue": f"due_date < {at}",
        "aging": f"updated_at < {aging_since}",
        "unassigned": "assigned_to IS NULL",
        "high_backlog": "priority IN ('high', 'urgent')",
    }


def health_sample_record(*, at: datetime) -> int:
    """Sample the health metrics of every owner and team at `at` (a sampling slot: sampling it
    again overwrites it) into analytics_health_sample. Zero counts are not stored."""
    counts = ", ".join(f"count(*) FILTER (WHERE {condition}) AS {name}" for name, condition in health_filters().items())
    pairs = ", ".join(f"('{name}', {name})" for name in HEALTH_METRICS)

    def insert() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO analytics_health_sample (sampled_at, owner_id, team_id, metric, value) "
                "SELECT %(at)s, user_id, team_id, m.metric, m.value FROM ("
                f"  SELECT user_id, team_id, {counts} FROM {TodoView._meta.db_table}"
                "   WHERE NOT completed AND deleted_at IS NULL GROUP BY user_id, team_id"
                f") g CROSS JOIN LATERAL (VALUES {pairs}) AS m(metric, value) WHERE m.value > 0 "
                "ON CONFLICT (metric, owner_id, sampled_at, team_id) DO UPDATE SET value = EXCLUDED.value",
                {"at": at, "aging_since": at - timedelta(days=settings.ANALYTICS_AGING_DAYS)},
            )
            return cursor.rowcount

    return partitions.write("analytics_health_sample", [at], insert)
