"""Settings every environment shares. Values that differ come from polystack.settings.env."""
from pathlib import Path

import dj_database_url

from polystack.settings import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = False
SECRET_KEY = env.get("DJANGO_SECRET_KEY", "")
ALLOWED_HOSTS = env.get_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

# No "daphne" app: it is there to make `runserver` serve ASGI, and every role (the web one is
# `daphne ... apps.web.asgi:application`, see polystack/ops/roles.py) would import Twisted for it
# at start, half a second of CPU each.
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "polystack.streaming",
    "polystack.ops",
    "apps.todos",
    "apps.projections",
    "apps.realtime",
    "apps.notifications",
    "apps.analytics",
    "apps.reminders",
    "apps.sync",
    "apps.web",
]

MIDDLEWARE = [
    "polystack.metrics.ResponseMetricsMiddleware",  # first: it counts every answer, 503s of outages too
    "django.middleware.security.SecurityMiddleware",
    "polystack.outages.OutageMiddleware",
    # Serves the admin's and the web page's static files from every role, daphne included.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "polystack.throttle.LoginThrottleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "apps.web.urls"
WSGI_APPLICATION = "apps.web.wsgi.application"
ASGI_APPLICATION = "apps.web.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env.get("DATABASE_URL")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
# A connection pool rather than persistent connections: under ASGI every request runs its
# sync code in a thread of its own, and a per-thread connection would leak with it.
DATABASES["default"].setdefault("OPTIONS", {}).update(
    connect_timeout=env.get_int("DATABASE_CONNECT_TIMEOUT", 5),
    pool={"min_size": 1, "max_size": env.get_int("DATABASE_POOL_SIZE", 20), "timeout": 10},
)
# A pooled connection is tried before it is handed out (psycopg_pool's check, which Django
# turns on with this), so after a PostgreSQL restart or a network cut nobody gets a dead one.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REDIS_URL = env.get("REDIS_URL")

# The shared cache: request throttles (polystack.throttle) count across every web process.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.get("CACHE_KEY_PREFIX", "polystack"),
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    },
}
API_THROTTLE_RATES = {
    "user": env.get("API_THROTTLE_USER", "1200/min"),
    "anon": env.get("API_THROTTLE_ANON", "60/min"),
}
LOGIN_THROTTLE_RATE = env.get("LOGIN_THROTTLE_RATE", "10/min")
WS_CONNECT_RATE = env.get("WS_CONNECT_RATE", "30/min")
# Mutations a user's devices may push over /ws/sync/: a device back from days offline with
# 5,000 changes pushes them in a minute; a flood waits (its push is refused with retryAfter).
WS_PUSH_RATE = env.get("WS_PUSH_RATE", "6000/min")
# The web role's garbage collection (polystack/gcpolicy.py): freeze what is alive this often,
# thaw and collect once this often (seconds; 0 switches a part off).
GC_FREEZE_EVERY_S = env.get_int("GC_FREEZE_EVERY_S", 10)
GC_THAW_EVERY_S = env.get_int("GC_THAW_EVERY_S", 3600)

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One queue per system on a shared Redis: a worker never runs another system's tasks.
CELERY_TASK_DEFAULT_QUEUE = env.get("CELERY_QUEUE", "polystack")
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

# Email goes over SMTP. Locally `make run` starts an SMTP sink on 127.0.0.1:1025 that prints
# every message it receives (its log prefix is `mail`).
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env.get("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env.get_int("EMAIL_PORT", 1025)
EMAIL_HOST_USER = env.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.get_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.get("DEFAULT_FROM_EMAIL", "PolyStack <noreply@polystack.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Who is told when dead letters arrive (Django's mail_admins): ADMIN_EMAILS=a@example.org,b@example.org.
ADMINS = [("", address) for address in env.get_list("ADMIN_EMAILS", "")]
# At most one such email per DLQ topic per this many seconds.
DLQ_ALERT_INTERVAL_S = env.get_int("DLQ_ALERT_INTERVAL_S", 900)
# Links in emails point here.
PUBLIC_BASE_URL = env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["polystack.throttle.UserThrottle", "polystack.throttle.AnonThrottle"],
    "DEFAULT_PARSER_CLASSES": [
        "polystack.api.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "PolyStack API",
    "DESCRIPTION": "An event-driven todo service on Apache Kafka.",
    "VERSION": "0.1.0",
    # The schema and its browsable docs are for signed-in users: they map every endpoint.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# Kafka. Topic declarations live in polystack/streaming/topics.py; only what differs per
# deployment is here.
KAFKA_BOOTSTRAP_SERVERS = env.get("KAFKA_BOOTSTRAP_SERVERS")
KAFKA_REPLICATION_FACTOR = env.get_int("KAFKA_REPLICATION_FACTOR")
KAFKA_CLIENT_ID = env.get("KAFKA_CLIENT_ID", "polystack")
KAFKA_TOPIC_PREFIX = env.get("KAFKA_TOPIC_PREFIX", "")
# The todo projection: a snapshot every N applied events (0: only on demand), and how long a
# command waits for its events to be projected before answering 202 instead of 200/201.
PROJECTION_SNAPSHOT_EVERY = env.get_int("PROJECTION_SNAPSHOT_EVERY", 100_000)
READ_YOUR_WRITES_TIMEOUT_S = float(env.get("READ_YOUR_WRITES_TIMEOUT_S", "2.0"))

# Retry topics (polystack.streaming.retry): every retry policy's delays times this. Tests and
# demos shrink them (0.05: 2 s becomes 0.1 s); leave it at 1 in production.
STREAMING_RETRY_DELAY_SCALE = float(env.get("STREAMING_RETRY_DELAY_SCALE", "1.0"))
# Phase 4 reminders: one fired more than this after its time is marked late (the scheduler was
# down or behind; on time means within a second).
REMINDER_LATE_AFTER_S = float(env.get("REMINDER_LATE_AFTER_S", "5.0"))

# Stream applications (polystack.streaming.streams) keep their state stores under this folder,
# one subfolder per app; losing it costs a restore from the changelog topics, nothing more.
STREAM_STATE_DIR = env.get("STREAM_STATE_DIR", str(BASE_DIR / ".stack" / "state"))
# Fault injection, for the zombie test only (0: off): a transactional role waits this long after
# producing a batch's records and before sending its offsets, a window in which a test freezes it
# with its transaction open. A process frozen at random almost never lands there: its records
# reach the log after linger.ms, when its offsets are usually on their way already.
STREAM_FAULT_PAUSE_BEFORE_OFFSETS_S = float(env.get("STREAM_FAULT_PAUSE_BEFORE_OFFSETS_S", "0"))
# Phase 3 analytics (apps/analytics). An event up to ANALYTICS_GRACE_S after a window's end
# still counts in it; later ones are dropped from it and recorded as late. An occurredAt more
# than ANALYTICS_MAX_CLOCK_SKEW_S after the broker received the event is refused (DLQ).
ANALYTICS_GRACE_MS = 1000 * env.get_int("ANALYTICS_GRACE_S", 600)
ANALYTICS_MAX_CLOCK_SKEW_MS = 1000 * env.get_int("ANALYTICS_MAX_CLOCK_SKEW_S", 300)
# Window results and health samples older than this are dropped, a whole partition at a time.
ANALYTICS_RETENTION_DAYS = env.get_int("ANALYTICS_RETENTION_DAYS", 400)
# Aging todos: not updated in this many days (the health samples; the API takes ?days=).
ANALYTICS_AGING_DAYS = env.get_int("ANALYTICS_AGING_DAYS", 7)
# Health metrics are sampled from the projection this often (Celery beat), per owner and team.
ANALYTICS_HEALTH_EVERY_S = env.get_int("ANALYTICS_HEALTH_EVERY_S", 300)
CELERY_BEAT_SCHEDULE |= {
    "analytics-sample-health": {"task": "apps.analytics.tasks.sample_health",
                                "schedule": float(ANALYTICS_HEALTH_EVERY_S)},
    "analytics-maintain-partitions": {"task": "apps.analytics.tasks.maintain_partitions", "schedule": 3600.0},
}

# Phase 5 sync (apps/sync): records older than this are pruned from the sink's table (hourly,
# Celery beat), as device-sync-events drops them; a device further behind takes a snapshot.
SYNC_RETENTION_DAYS = env.get_int("SYNC_RETENTION_DAYS", 7)
CELERY_BEAT_SCHEDULE |= {"sync-prune-records": {"task": "apps.sync.tasks.prune_records", "schedule": 3600.0}}

# Extra modules that register consumers, besides every app's `consumers` module.
POLYSTACK_CONSUMER_MODULES = env.get_list("POLYSTACK_CONSUMER_MODULES", "")

# LOG_FORMAT=json: one JSON object a line (polystack/logs.py); LOG_EVENTS=0: no line per event
# handled by the consumers.
LOG_FORMAT = "json" if env.get("LOG_FORMAT", "plain") == "json" else "plain"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "polystack.logs.JsonFormatter"},
        "as-is": {"format": "%(message)s"},  # the event lines come whole, a batch at a time
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
        "events": {"class": "logging.StreamHandler", "formatter": "as-is"},
    },
    "root": {"handlers": ["console"], "level": env.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "polystack.events": {"handlers": ["events"], "propagate": False,
                             "level": "INFO" if env.get("LOG_EVENTS", "1") != "0" else "WARNING"},
    },
}

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/todos/"
LOGOUT_REDIRECT_URL = "/login/"
