"""Which failures mean "a dependency is down" (PostgreSQL, Redis, Kafka) rather than "this
message or this code is wrong".

A dependency being down is not a poison message and not a reason to stop: a role waits for it,
with capped backoff, for as long as it takes, says so in its log, and resumes by itself. The
web answers 503 with Retry-After for what needs it. Only errors of this kind get that patience;
anything else keeps its usual handling (DLQ, or retries that end).
"""
import logging

import django.db
import kombu.exceptions
import psycopg
import redis.exceptions
from confluent_kafka import KafkaError, KafkaException
from django.http import JsonResponse

logger = logging.getLogger("polystack.outages")

# Kafka errors a client sees while the cluster is unreachable; librdkafka reconnects by itself.
_KAFKA_OUTAGE = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
                 KafkaError._MSG_TIMED_OUT, KafkaError._RESOLVE, KafkaError.COORDINATOR_NOT_AVAILABLE,
                 KafkaError.NOT_COORDINATOR, KafkaError.LEADER_NOT_AVAILABLE}

_DOWN = (
    django.db.OperationalError, django.db.InterfaceError,  # PostgreSQL, through the ORM
    psycopg.OperationalError, psycopg.InterfaceError,  # PostgreSQL, connections of our own
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,  # Redis: live pushes, cache
    kombu.exceptions.OperationalError,  # Redis as Celery's broker
)

MAX_WAIT_S = 10.0


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, _DOWN):
        return True
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error = exc.args[0]
        return not error.fatal() and (error.code() in _KAFKA_OUTAGE or error.retriable())
    return False


def describe(exc: BaseException) -> str:
    """One line naming what is down, for logs."""
    if isinstance(exc, (django.db.Error, psycopg.Error)):
        what = "PostgreSQL"
    elif isinstance(exc, (redis.exceptions.RedisError, kombu.exceptions.OperationalError)):
        what = "Redis"
    elif isinstance(exc, KafkaException):
        what = "Kafka"
    else:
        what = "a dependency"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{what} is unavailable ({type(exc).__name__}: {detail[:200]})"


def next_wait(previous: float) -> float:
    """Capped exponential backoff: 0.5, 1, 2 … MAX_WAIT_S seconds."""
    return min(max(previous * 2, 0.5), MAX_WAIT_S)


def run_through(run_once, *, stopping, logger: logging.Logger, who: str, waiting: str) -> None:
    """Call `run_once()` until it returns or `stopping` (a threading.Event) is set, waiting out
    outages with capped backoff, for as long as they last; any other error is raised. For a
    loop of our own (the relay, the scheduler): `who` waits, `waiting` says what keeps meanwhile."""
    wait = 0.0
    while not stopping.is_set():
        try:
            run_once()
            return
        except Exception as exc:
            if not is_outage(exc):
                raise
            wait = next_wait(wait)
            logger.warning("%s; %s waits and tries again in %.1f s (%s)", describe(exc), who, wait, waiting)
            django.db.close_old_connections()  # a broken connection is replaced, not reused
            stopping.wait(wait)


RETRY_AFTER_S = 5


class OutageMiddleware:
    """A request that needs what is down answers 503 with Retry-After, not 500: the client may
    try again, and what needs nothing missing (health probes, pages of other data) keeps
    working. Only outages (is_outage) are answered so; every other error stays what it was."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_outage(exception):
            return None
        logger.warning("%s %s: %s; answered 503", request.method, request.path,
                                                       describe(exception))
        response = JsonResponse({"detail": "A service this request needs is unavailable for a moment; "
                                           "try again shortly."}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
