"""Settings for a developer's machine: debug on, a fixed key that is only good locally."""
from polystack.settings.base import *  # noqa: F403
from polystack.settings import env

DEBUG = env.get_bool("DJANGO_DEBUG", True)
SECRET_KEY = env.get("DJANGO_SECRET_KEY", "local-only-not-secret-" + "x" * 40)
# Static files straight from the apps, without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
