"""PostgreSQL helpers outside the ORM: a libpq connection string, a reachability check, and
the advisory-lock keys of the whole project."""
import enum

import psycopg
from django.db import connection


@enum.unique
class AdvisoryLock(enum.IntEnum):
    """Every pg_advisory_lock key the project takes, in one list, so that no two uses share one."""

    RELAY_LEADER = 7_361_001  # session lock of the active relay (apps.todos.relay)
    PROJECTION = 7_361_002  # live applies share it; the rebuild's swap takes it alone (apps.projections)
    REPLAY = 7_361_003  # one replay at a time (apps.projections.replay)
    ANALYTICS_PARTITIONS = 7_361_004  # creating or dropping time partitions (apps.analytics.partitions)


class DatabaseUnreachableError(Exception):
    """PostgreSQL at DATABASE_URL did not let us in."""


# What Django hands psycopg besides libpq's own parameters: Python objects, not conninfo.
_NOT_LIBPQ = {"context", "cursor_factory", "prepare_threshold", "pool", "autocommit", "row_factory",
              "server_side_binding", "isolation_level", "assume_role"}


def conninfo() -> str:
    """libpq parameters of the default database, for connections of our own (LISTEN, locks):
    every one the ORM's connections use (sslmode, sslrootcert, options, ...), not only host and
    credentials."""
    params = connection.get_connection_params()
    return psycopg.conninfo.make_conninfo(
        **{k: v for k, v in params.items() if k not in _NOT_LIBPQ and v is not None and v != ""})


def describe() -> str:
    params = connection.settings_dict
    return f"{params.get('HOST') or 'localhost'}:{params.get('PORT') or 5432}/{params.get('NAME')}"


def check_reachable(timeout: float = 5.0) -> None:
    """Connect directly (not through the pool, which retries quietly for seconds)."""
    try:
        psycopg.connect(conninfo(), connect_timeout=max(1, int(timeout))).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnreachableError(f"PostgreSQL is unreachable at {describe()}: {reason}") from None
