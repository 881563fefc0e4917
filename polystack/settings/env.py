"""The one place that reads the environment; settings modules import from here."""
import os

from django.core.exceptions import ImproperlyConfigured

DEFAULTS = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "DATABASE_URL": "postgres://polystack:polystack@127.0.0.1:5432/polystack",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "KAFKA_REPLICATION_FACTOR": "1",
}


def get(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value not in (None, ""):
        return value
    if default is not None:
        return default
    if name in DEFAULTS:
        return DEFAULTS[name]
    raise ImproperlyConfigured(f"Set the environment variable {name}.")


def get_int(name: str, default: int | None = None) -> int:
    raw = get(name, None if default is None else str(default))
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from None


def get_bool(name: str, default: bool) -> bool:
    raw = get(name, "1" if default else "0").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}.")


def get_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in get(name, default).split(",") if item.strip()]
