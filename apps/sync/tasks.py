"""Celery tasks of the sync app: retention of the sink's records (beat), and a team's todos
copied to a member who just joined, until the copy is complete."""
import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.sync import services

logger = logging.getLogger("apps.sync")

CATCH_UP_FIRST_S = 0.5  # the pipeline's latency (relay, coordinator, sink) is ~0.1 s
CATCH_UP_MAX_S = 30  # the wait doubles up to this: a stopped sink is not polled hard
CATCH_UP_TRIES = 40  # ~17 min in all: a sink down longer than that is the operator's to see


@shared_task(acks_late=True)
def prune_records() -> int:
    return services.records_prune(older_than=timezone.now() - timedelta(days=settings.SYNC_RETENTION_DAYS))


@shared_task(bind=True, acks_late=True, max_retries=CATCH_UP_TRIES)
def team_todos_catch_up(self, user_id: int, team_ids: list[str]) -> int:
    """Copy the teams' todos the joining user still lacks (their newest events were on their way
    to the sink when the user joined), and try again later while some are missing."""
    behind = services.user_access_widened(user_id=user_id, team_ids=team_ids)
    if behind:
        if self.request.retries >= CATCH_UP_TRIES:
            logger.warning("user %s still lacks %d todos of teams %s: the sink is not storing", user_id,
                           behind, team_ids)
            return behind
        raise self.retry(countdown=catch_up_delay(self.request.retries))
    return 0


def catch_up_delay(tries: int) -> float:
    return min(CATCH_UP_FIRST_S * 2 ** tries, CATCH_UP_MAX_S)
