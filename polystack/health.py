"""Health probes: /healthz says the process is up, /readyz that its dependencies answer.

Both are open to anonymous callers, as load balancers and orchestrators need; they name what
is down and the kind of error, never hosts, users or passwords.
"""
from collections.abc import Callable

import redis
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from polystack import db
from polystack.streaming import kafka

PROBE_TIMEOUT_S = 2.0


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


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the kind is reported
            checks[name] = {"ok": False, "error": type(exc).__name__}
        else:
            checks[name] = {"ok": True}
    unavailable = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "unavailable" if unavailable else "ok", "unavailable": unavailable, "checks": checks}
    return JsonResponse(body, status=503 if unavailable else 200)
