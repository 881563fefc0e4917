"""Brute-force and flood protection: request rates per user and per address, kept in the shared
cache (Redis) so that every web process counts together. Over a rate: 429 with Retry-After.

- The REST API: `API_THROTTLE_RATES` per signed-in user ("user") and per address ("anon").
- WebSocket connects: `WS_CONNECT_RATE` per user (a client reconnecting in a loop).
- Device mutations pushed over /ws/sync/: `WS_PUSH_RATE` per user, counted in mutations.
- Sign-in (`POST /api/auth/token/`, `/login/`, `/admin/login/`): `LOGIN_THROTTLE_RATE` per
  address and, separately, per username tried, so neither one address trying many names nor
  many addresses trying one name gets far.

Our rates (all but DRF's, which keeps a log of times) count in a sliding window (see _hit).

The address is REMOTE_ADDR: behind a proxy, make it the client's (e.g. a proxy that rewrites
it); X-Forwarded-For is not trusted here, a client could write anything in it. Should the cache be
unreachable, requests are let through (and logged): throttling must not take the site down.
"""
import json
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse
from redis.exceptions import RedisError
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger("polystack.throttle")

LOGIN_PATHS = {"/api/auth/token/", "/login/", "/admin/login/"}
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """"10/min" -> (10, 60)."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period[0]]


class _RatesFromSettings:
    """DRF binds THROTTLE_RATES when it is imported; these read the setting at each request."""

    def get_rate(self):
        return settings.API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            logger.warning("throttle skipped: the cache is unreachable (%s)", exc)
            return True


class UserThrottle(_RatesFromSettings, UserRateThrottle):
    pass


class AnonThrottle(_RatesFromSettings, AnonRateThrottle):
    pass


def hit(key: str, rate: str, cost: int = 1, *, now: float | None = None) -> int | None:
    """Count `cost` events of `key` against `rate` ("30/min") at `now` (the clock's time unless
    given); the seconds to wait when over it. Lets it through (None) when the cache is
    unreachable."""
    try:
        return _hit(key, *parse_rate(rate), cost, now=now)
    except RedisError as exc:
        logger.warning("throttle skipped: the cache is unreachable (%s)", exc)
        return None


def forget(key: str, rate: str) -> None:
    """Drop what `key` counted against `rate` (an operator lifting a block)."""
    period, now = parse_rate(rate)[1], time.time()
    cache.delete_many([_window(key, period, now), _window(key, period, now - period)])


def _window(key: str, period: int, now: float) -> str:
    return f"{key}:{int(now // period)}"


def _hit(key: str, limit: int, period: int, cost: int = 1, *, now: float | None = None) -> int | None:
    """Count `cost` attempts now; the seconds to wait when the attempts of the last `period`
    seconds are then more than `limit`, else None. Refused attempts count too: a client that
    keeps trying stays refused.

    The last `period` seconds are a sliding window, estimated from two fixed ones: this window's
    count, plus the previous window's weighted by the share of it still within the last `period`
    seconds. Fixed windows alone would let twice the limit through across an edge (the limit
    at the end of one, the limit again at the start of the next)."""
    now = time.time() if now is None else now
    current = _window(key, period, now)
    cache.add(current, 0, timeout=2 * period)  # the next window weighs it too
    count = cache.incr(current, cost)
    previous = cache.get(_window(key, period, now - period), 0)
    into = (now % period) / period  # how far into this window, as a share of it
    if count + previous * (1 - into) <= limit:
        return None
    return math.ceil(_wait(count, previous, into, limit - 1) * period) or 1


def _wait(count: int, previous: int, into: float, room: int) -> float:
    """How long, in periods, until the estimate leaves `room` attempts (one more is let in),
    with no attempt meanwhile."""
    if count > room:  # this window alone is too full: into the next one, until its weight fades
        return (1 - into) + (1 - room / count)
    return max(1 - (room - count) / previous - into, 0)  # until the previous window's weight fades


def _username(request) -> str:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):
            return ""
        return str(body.get("username", ""))[:150] if isinstance(body, dict) else ""
    return request.POST.get("username", "")[:150]


class LoginThrottleMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and request.path in LOGIN_PATHS:
            limit, period = parse_rate(settings.LOGIN_THROTTLE_RATE)
            try:
                waits = [_hit(f"login:addr:{request.META.get('REMOTE_ADDR', '')}", limit, period)]
                name = _username(request).strip().lower()
                if name:
                    waits.append(_hit(f"login:user:{name}", limit, period))
            except RedisError as exc:
                logger.warning("sign-in throttle skipped: the cache is unreachable (%s)", exc)
                waits = []
            wait = max((w for w in waits if w), default=None)
            if wait:
                logger.warning("sign-in throttled for %s s: %s from %s", wait, request.path, request.META.get("REMOTE_ADDR"))
                response = JsonResponse({"detail": f"Too many sign-in attempts. Try again in {wait} seconds."},
                                        status=429)
                response["Retry-After"] = str(wait)
                return response
        return self.get_response(request)
