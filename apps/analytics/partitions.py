"""Time partitions of the analytics time series: one per week (from Monday 00:00 UTC), created
before rows need them and dropped whole once older than ANALYTICS_RETENTION_DAYS.

This is TimescaleDB's hypertable (time chunks) and retention policy in plain PostgreSQL 15
declarative partitioning: dropping a partition is instant and leaves no dead rows to vacuum, and
a query over a time range reads only the partitions that range touches (partition pruning).
"""
import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from polystack.db import AdvisoryLock

logger = logging.getLogger("apps.analytics")

# Partitioned table -> its time column (the partition key).
TABLES = {"analytics_window": "window_start", "analytics_health_sample": "sampled_at"}
PERIOD = timedelta(days=7)
_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)
_NAME = re.compile(r"^(?P<table>\w+)_p(?P<start>\d{8})$")

_known: dict[str, set[datetime]] = {}  # partitions this process knows exist, per table
NO_PARTITION = "23514"  # check_violation: PostgreSQL found no partition for a row
T = TypeVar("T")


def period_start(moment: datetime) -> datetime:
    """The start of the partition that holds `moment`."""
    return moment - (moment - _MONDAY) % PERIOD


def partition_name(table: str, start: datetime) -> str:
    return f"{table}_p{start:%Y%m%d}"


def retention_cutoff(now: datetime | None = None) -> datetime:
    """Rows older than this are gone (or about to be): writers skip them."""
    return (now or timezone.now()) - timedelta(days=settings.ANALYTICS_RETENTION_DAYS)


def existing(table: str) -> dict[str, datetime]:
    """The table's partitions: name -> start."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits JOIN pg_class parent ON parent.oid = inhparent "
            "JOIN pg_class child ON child.oid = inhrelid WHERE parent.relname = %s", [table])
        names = [name for (name,) in cursor.fetchall()]
    found = {}
    for name in names:
        match = _NAME.match(name)
        if match and match["table"] == table:
            found[name] = datetime.strptime(match["start"], "%Y%m%d").replace(tzinfo=UTC)
    return found


def ensure(table: str, moments: Iterable[datetime]) -> None:
    """Create the partitions that rows at `moments` need, if they do not exist yet."""
    known = _known.setdefault(table, set())
    needed = {period_start(moment) for moment in moments} - known
    if not needed:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AdvisoryLock.ANALYTICS_PARTITIONS])
        there = set(existing(table).values())
        for start in sorted(needed - there):
            name = partition_name(table, start)
            cursor.execute(
                f'CREATE TABLE "{name}" PARTITION OF "{table}" FOR VALUES FROM (%s) TO (%s)', [start, start + PERIOD])
            logger.info("created partition %s", name)
        known |= needed | there


def write(table: str, moments: Iterable[datetime], statement: Callable[[], T]) -> T:
    """Run `statement` (a write of rows at `moments`) once their partitions exist. This process
    remembers the partitions it saw; should one be gone since (retention, or a rolled-back
    transaction that created it), the write fails on it once, and is made again afresh."""
    moments = list(moments)
    ensure(table, moments)
    try:
        with transaction.atomic():
            return statement()
    except IntegrityError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != NO_PARTITION:
            raise
    _known.pop(table, None)
    ensure(table, moments)
    with transaction.atomic():
        return statement()


def drop_expired(now: datetime | None = None) -> list[str]:
    """Drop every partition whose whole week is older than the retention period."""
    cutoff = retention_cutoff(now)
    dropped = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AdvisoryLock.ANALYTICS_PARTITIONS])
        for table in TABLES:
            for name, start in sorted(existing(table).items()):
                if start + PERIOD <= cutoff:
                    cursor.execute(f'DROP TABLE "{name}"')
                    _known.get(table, set()).discard(start)
                    dropped.append(name)
    if dropped:
        logger.info("retention (%d days) dropped %s", settings.ANALYTICS_RETENTION_DAYS, ", ".join(dropped))
    return dropped


def maintain(now: datetime | None = None) -> list[str]:
    """The periodic task: partitions for the weeks around now exist, expired ones are gone."""
    now = now or timezone.now()
    for table in TABLES:
        ensure(table, [now - PERIOD, now, now + PERIOD, now + 2 * PERIOD])
    return drop_expired(now)
