"""Run the benchmarks: `python -m bench [name ...]` (all by default). Needs the local stack.

Benchmarks use a database of their own (<name>_bench, migrated here) and topics under a
prefix of their own, so they neither read nor disturb a running development system.
"""
import importlib
import os
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

BENCHMARKS = {
    "runner": "bench.runner_overhead",
    "relay": "bench.relay",
    "projection": "bench.projection",
    "commands": "bench.commands",
    "fanout": "bench.fanout",
    "analytics": "bench.analytics",
    "reminders": "bench.reminders",
    "sync": "bench.sync",
    # Last: rebuilding 1,000,000 rows leaves PostgreSQL minutes of checkpoint and vacuum work
    # that would land on whatever ran next.
    "replay": "bench.replay_million",
}


def _bench_database_url() -> str:
    from polystack.settings import env

    url = urlsplit(env.get("DATABASE_URL"))
    return urlunsplit(url._replace(path=url.path.rstrip("/") + "_bench"))


def _create_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "polystack.settings.test")
    os.environ["DATABASE_URL"] = _bench_database_url()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Measure what production runs: with DEBUG on, Django wraps every cursor to record each
    # query (time and memory), and the roles the benchmarks start would pay it too.
    os.environ.setdefault("DJANGO_DEBUG", "0")
    _create_database(os.environ["DATABASE_URL"])

    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from bench.common import drop_prefixed_topics

    run_id = uuid.uuid4().hex[:6]
    print(f"database {urlsplit(os.environ['DATABASE_URL']).path.lstrip('/')}", flush=True)
    for name in names:
        # Topics of its own for every benchmark: none reads what another one left behind.
        prefix = f"bench-{run_id}-{name}."
        os.environ["KAFKA_TOPIC_PREFIX"] = settings.KAFKA_TOPIC_PREFIX = prefix
        call_command("ensuretopics", stdout=open(os.devnull, "w"))
        print(f"\n== {name} ==  (topics {prefix}*)", flush=True)
        try:
            importlib.import_module(BENCHMARKS[name]).run()
        finally:
            drop_prefixed_topics()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
