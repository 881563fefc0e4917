"""Prometheus metrics of every role, and the one way a role exposes them.

One HTTP port per process (`METRICS_PORT`, on `METRICS_HOST`, loopback by default), started by
the role itself (`serve()`): every role is one process (Celery's worker runs its tasks in
threads for this reason), so no multiprocess mode with its shared files and its limits (no
live gauges, a directory to clean at each start). The web role's metrics are on a port of
their own too, never on the public web port. Unset, nothing listens: tests and one-off
commands expose nothing.

Names are `polystack_<area>_<what>`; `docker/grafana/polystack.json` and
`docker/prometheus/alerts.yml` use only names defined here (tests/ops/test_metrics.py checks).
Labels are few and bounded (consumer names, groups, topics, partitions, channels): never a
user, a todo or an event id.
"""
import logging
import os

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

logger = logging.getLogger("polystack.metrics")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

# --- consumers (polystack.streaming.runner, .transactional) ----------------------------------
CONSUMER_MESSAGES = Counter("polystack_consumer_messages", "Messages a consumer finished, by outcome "
                            "(handled, dead_lettered, retried: sent to a retry topic)",
                            ["consumer", "group", "outcome"])
CONSUMER_BATCH_SIZE = Histogram("polystack_consumer_batch_size", "Messages per batch handed to a consumer's handler",
                                ["consumer"], buckets=SIZE_BUCKETS)
CONSUMER_HANDLE_SECONDS = Histogram("polystack_consumer_handle_seconds",
                                    "Time a consumer's handler took for one batch (retries included)",
                                    ["consumer"], buckets=LATENCY_BUCKETS)
CONSUMER_REBALANCES = Counter("polystack_consumer_rebalances", "Partitions assigned, revoked or lost in rebalances",
                              ["consumer", "group", "event"])
CONSUMER_ASSIGNED = Gauge("polystack_consumer_assigned_partitions", "Partitions this member owns now",
                          ["consumer", "group"])
RETRY_SENT = Counter("polystack_retry_messages", "Messages sent to a retry topic", ["consumer", "topic"])
DLQ_SENT = Counter("polystack_dlq_messages", "Messages sent to a dead-letter topic", ["consumer", "topic"])
TRANSACTIONS = Counter("polystack_transactions", "Kafka transactions of a transactional consumer, by outcome "
                       "(committed, aborted)", ["consumer", "outcome"])
FENCED = Counter("polystack_transactions_fenced", "Times a transactional consumer was fenced (a newer instance "
                 "of its transactional.id, or a group generation it no longer has)", ["consumer"])

# --- the relay (apps.todos.relay) -------------------------------------------------------------
# A metric without labels is exported from the moment it is defined, so these are not registered
# where they are defined: only the role that counts them exports them (serve(..., own=...)), not
# every role that happens to import this module.
RELAY_PUBLISHED = Counter("polystack_relay_published_events", "Outbox events the relay published to Kafka",
                          registry=None)
RELAY_PASS_SECONDS = Histogram("polystack_relay_pass_seconds", "Time of one pass that published outbox rows "
                               "(read, produced, acknowledged, deleted)", buckets=LATENCY_BUCKETS, registry=None)

# --- the web role --------------------------------------------------------------------------
WS_OPEN = Gauge("polystack_ws_connections", "WebSockets open now", ["socket"])
WS_FRAMES = Counter("polystack_ws_frames_sent", "Frames sent on WebSockets", ["socket"])
HTTP_RESPONSES = Counter("polystack_http_responses", "HTTP responses by status class (2xx, 4xx, 5xx...)",
                         ["status"])

# --- features --------------------------------------------------------------------------------
NOTIFICATIONS = Counter("polystack_notifications", "Notifications by channel and outcome (sent, failed)",
                        ["channel", "outcome"])
REMINDER_LATENESS = Histogram("polystack_reminder_lateness_seconds", "How long after its time a reminder fired",
                              buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600), registry=None)
ANALYTICS_LATE = Counter("polystack_analytics_late_events",
                         "Events that came after their window's grace period and were dropped from it", ["window"])
CELERY_TASKS = Counter("polystack_celery_tasks", "Celery tasks by name and outcome", ["task", "outcome"])


class ResponseMetricsMiddleware:
    """Counts every HTTP response by status class (polystack_http_responses_total)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.by_class = {n: HTTP_RESPONSES.labels(f"{n}xx") for n in range(1, 6)}

    def __call__(self, request):
        response = self.get_response(request)
        counter = self.by_class.get(response.status_code // 100)
        if counter is not None:
            counter.inc()
        return response


def serve(role: str, own: tuple = ()) -> int | None:
    """Start this process's metrics endpoint when METRICS_PORT is set; its port, else None.
    `own`: the unlabelled metrics only this role counts (see RELAY_PUBLISHED). A port already
    taken is logged, not fatal: the role matters more than its metrics."""
    port = os.environ.get("METRICS_PORT")
    if not port:
        return None
    for metric in own:
        REGISTRY.register(metric)
    host = os.environ.get("METRICS_HOST", "127.0.0.1")
    disable_created_metrics()  # the *_created series: one more per counter, used by nothing here
    try:
        start_http_server(int(port), addr=host)
    except (OSError, ValueError) as exc:
        logger.error("%s: no metrics endpoint on %s:%s (%s)", role, host, port, exc)
        return None
    logger.info("%s: metrics on http://%s:%s/metrics", role, host, port)
    return int(port)
