"""PostgreSQL helpers outside the ORM: a libpq connection string, a reachability check."""
import psycopg
from django.db import connection


class DatabaseUnreachableError(Exception):
    """PostgreSQL at DATABASE_URL did not let us in."""


def conninfo() -> str:
    """libpq parameters of the default database, for connections of our own (LISTEN, locks)."""
    params = connection.get_connection_params()
    keys = {"host", "port", "user", "password", "dbname", "connect_timeout"}
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if k in keys and v})


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
