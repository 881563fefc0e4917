"""Settings for production: every secret from the environment, no debug, secure cookies."""
from django.core.exceptions import ImproperlyConfigured

from polystack.settings.base import *  # noqa: F403
from polystack.settings import env

DEBUG = False
SECRET_KEY = env.get("DJANGO_SECRET_KEY", "")
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random value of at least 32 characters in production "
        "(on a developer's machine, set DJANGO_SETTINGS_MODULE=polystack.settings.local, as the Makefile does)."
    )
ALLOWED_HOSTS = env.get_list("DJANGO_ALLOWED_HOSTS", "")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must name the hosts this site serves.")
CSRF_TRUSTED_ORIGINS = env.get_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
# HTTPS only: plain HTTP is redirected (except the probes, which orchestrators call over plain
# HTTP inside the cluster), and browsers are told to come back over HTTPS only (HSTS).
SECURE_SSL_REDIRECT = env.get_bool("DJANGO_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.get_int("DJANGO_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.get_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env.get_bool("DJANGO_HSTS_PRELOAD", True)
# Whether a request came over HTTPS is read from X-Forwarded-Proto only when a TLS-terminating
# proxy in front sets it (and strips what clients send): trusted blindly, any client could claim
# HTTPS. The image serves daphne directly, so this is off unless said otherwise.
if env.get_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
