"""Settings for the test suite: the real local stack, fast password hashing."""
from polystack.settings.local import *  # noqa: F403
from polystack.settings import env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Every test signs in from 127.0.0.1: rates that only the throttling tests, which set their own,
# reach. Throttles still count (in Redis), as in production.
LOGIN_THROTTLE_RATE = "1000/min"
WS_CONNECT_RATE = env.get("WS_CONNECT_RATE", "1000/min")  # a test of the rate sets its own
WS_PUSH_RATE = env.get("WS_PUSH_RATE", "1000000/min")
API_THROTTLE_RATES = {"user": "100000/min", "anon": "100000/min"}
# `make test` runs two pytest workers (pytest-xdist), each on a database of its own but one
# Redis: the worker's name keeps their throttle counters apart (user ids repeat across databases).
CACHES = {"default": {**CACHES["default"],  # noqa: F405
                      "KEY_PREFIX": "polystack-test" + env.get("PYTEST_XDIST_WORKER", "-")}}
