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
    assert 0 < int(answers[-1]["Retry-After"]) <= 61
    from tests.factories import PASSWORD

    right = {"username": user.username, "password": PASSWORD}
    assert (client.post(path, right) if form else client.post(path, right, content_type="application/json")
            ).status_code == 429, "even the right password waits"


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
