"""Brute-force and flood protection: request rates per user and per address, kept in the shared
cache (Redis) so that every web process counts together. Over a rate: 429 with Retry-After.

- The REST API: `API_THROTTLE_RATES` per signed-in user ("user") and per address ("anon").
- WebSocket connects: `WS_CONNECT_RATE` per user (a client reconnecting in a loop).
- Device mutations pushed over /ws/sync/: `WS_PUSH_RATE` per user, counted in mutations.
- Sign-in (`POST /api/auth/token/`, `/login/`, `/admin/login/`): `LOGIN_THROTTLE_RATE` per
  address and, separately, per username tried, so neither one address trying many names nor
  many addresses trying one name gets far.

The address is REMOTE_ADDR: behind a proxy, make it the client's (e.g. a proxy that rewrites
it); X-Forwarded-For is not trusted here, a client could write anything in it. Should the cache be
unreachable, requests are let through (and logged): throttling must not take the site down.
"""
import json
import logging
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


def hit(key: str, rate: str, cost: int = 1) -> int | None:
    """Count `cost` events of `key` against `rate` ("30/min"); the seconds to wait when over it.
    Lets it through (None) when the cache is unreachable."""
    try:
        return _hit(key, *parse_rate(rate), cost)
    except RedisError as exc:
        logger.warning("throttle skipped: the cache is unreachable (%s)", exc)
        return None


def forget(key: str, rate: str) -> None:
    """Drop what `key` counted in the current window of `rate` (an operator lifting a block)."""
    cache.delete(_window(key, parse_rate(rate)[1], time.time()))


def _window(key: str, period: int, now: float) -> str:
    return f"{key}:{int(now // period)}"


def _hit(key: str, limit: int, period: int, cost: int = 1) -> int | None:
    """Count `cost` attempts in the current window of `period` seconds; the seconds to wait
    when the window then holds more than `limit`, else None."""
    now = time.time()
    window = _window(key, period, now)
    cache.add(window, 0, timeout=period)
    if cache.incr(window, cost) > limit:
        return int(period - now % period) + 1
    return None


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
