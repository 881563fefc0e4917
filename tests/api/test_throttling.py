"""Brute force is throttled: sign-in per address and per username, the API per user; 429 with
Retry-After."""
import uuid

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from tests.helpers import api_client


def _forget_counts() -> None:
    """Delete this test run's cache keys: not cache.clear(), which empties the whole Redis
    database under the other pytest worker (its counts, Celery's queues)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=cache.make_key("*"), count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_counts():
    _forget_counts()
    yield
    _forget_counts()


@pytest.mark.parametrize("path,form", [("/api/auth/token/", False), ("/login/", True), ("/admin/login/", True)])
def test_sign_in_is_throttled_per_address(client, settings, user_factory, path, form):
    settings.LOGIN_THROTTLE_RATE = "5/min"
    user = user_factory(username=f"u{uuid.uuid4().hex[:6]}")
    answers = []
    for n in range(7):
        body = {"username": f"guess{n}", "password": "wrong"}
        answers.append(client.post(path, body) if form else client.post(path, body, content_type="application/json"))
    assert [a.status_code for a in answers[:5]] != [429] * 5
    assert answers[-1].status_code == 429
    assert 0 < int(answers[-1]["Retry-After"]) <= 2 * 60, "a sliding minute: at most into the next one"
    from tests.factories import PASSWORD

    right = {"username": user.username, "password": PASSWORD}
    assert (client.post(path, right) if form else client.post(path, right, content_type="application/json")
            ).status_code == 429, "even the right password waits"


def test_the_limit_holds_across_a_window_edge_and_retry_after_is_when_one_more_gets_in():
    """Five a minute: three at the end of one fixed minute and three at the start of the next
    are six within a few seconds, and the sixth is refused (a fixed window alone would let all
    six through). An attempt at Retry-After gets in; one halfway there does not."""
    from polystack import throttle

    key, rate, edge = f"edge:{uuid.uuid4().hex}", "5/min", 60 * 29_000_000.0  # a minute's start
    assert [throttle.hit(key, rate, now=edge - 3 + n) for n in range(3)] == [None] * 3
    assert [throttle.hit(key, rate, now=edge + n) for n in range(2)] == [None] * 2
    wait = throttle.hit(key, rate, now=edge + 2)
    assert wait is not None and 0 < wait <= 2 * 60, wait

    probe = f"{key}:probe"  # the same counts, to try halfway without counting it against `key`
    for n in range(3):
        throttle.hit(probe, rate, now=edge - 3 + n)
    for n in range(3):
        throttle.hit(probe, rate, now=edge + n)
    assert throttle.hit(probe, rate, now=edge + 2 + wait / 2) is not None, "refused before Retry-After"
    assert throttle.hit(key, rate, now=edge + 2 + wait) is None, "let in at Retry-After"


def test_a_steady_rate_under_the_limit_is_never_refused():
    from polystack import throttle

    key, start = f"steady:{uuid.uuid4().hex}", 60 * 29_000_100.0 + 17
    assert all(throttle.hit(key, "5/min", now=start + 15 * n) is None for n in range(40)), "4 a minute"


def test_sign_in_is_throttled_per_username_across_addresses(client, settings, user_factory):
    settings.LOGIN_THROTTLE_RATE = "3/min"
    user_factory(username="target")
    codes = [client.post("/api/auth/token/", {"username": "target", "password": "x"}, REMOTE_ADDR=f"10.0.0.{n}",
                         content_type="application/json").status_code for n in range(5)]
    assert codes[:3] == [400, 400, 400] and codes[3:] == [429, 429]


def test_the_api_is_throttled_per_user(settings, user_factory):
    settings.API_THROTTLE_RATES = {"user": "3/min", "anon": "2/min"}
    alice = api_client(user_factory())
    codes = [alice.get("/api/todos/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert api_client(user_factory()).get("/api/todos/").status_code == 200, "another user has their own count"
