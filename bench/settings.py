"""Settings of the server process the command benchmark starts: the test settings plus a
plain create endpoint to compare with."""
from polystack.settings.test import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
DEBUG = False
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
