"""Health probes: /healthz says the process is up, /readyz that its dependencies answer.

Both are open to anonymous callers, as load balancers and orchestrators need; they name what
is down and the kind of error, never hosts, users or passwords.
"""
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from polystack import db
from polystack.streaming import kafka

PROBE_TIMEOUT_S = 2.0
# A probe's answer is reused this long: each look opens a client to PostgreSQL, Redis and Kafka,
# and a probe (or anyone, it is public) calling in a loop must not turn that into a load.
READY_CACHE_S = 2.0
_ready_lock = threading.Lock()
_ready: tuple[float, dict] | None = None


def check_postgresql() -> None:
    db.check_reachable(timeout=PROBE_TIMEOUT_S)


def check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()


def check_kafka() -> None:
    kafka.check_reachable(timeout=PROBE_TIMEOUT_S)


CHECKS: dict[str, Callable[[], None]] = {
    "postgresql": check_postgresql,
    "redis": check_redis,
    "kafka": check_kafka,
}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readiness() -> dict:
    """What /readyz answers; looked at once per READY_CACHE_S however many ask meanwhile."""
    global _ready
    with _ready_lock:
        if _ready is None or time.monotonic() - _ready[0] >= READY_CACHE_S:
            _ready = (time.monotonic(), _look())
        return _ready[1]


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    body = readiness()
    return JsonResponse(body, status=503 if body["unavailable"] else 200)


def _look() -> dict:
    checks: dict[str, dict] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the kind is reported
            checks[name] = {"ok": False, "error": type(exc).__name__}
        else:
            checks[name] = {"ok": True}
    unavailable = [name for name, result in checks.items() if not result["ok"]]
    return {"status": "unavailable" if unavailable else "ok", "unavailable": unavailable, "checks": checks}
