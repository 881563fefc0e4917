"""Celery tasks of the sync app: retention of the sink's records (beat), and a team's todos
copied again to a member who just joined."""
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.sync import services


@shared_task(acks_late=True)
def prune_records() -> int:
    return services.records_prune(older_than=timezone.now() - timedelta(days=settings.SYNC_RETENTION_DAYS))


@shared_task(acks_late=True)
def team_todos_copy_again(user_id: int, team_ids: list[str]) -> int | None:
    """A todo whose events were on their way when the user joined (committed, not yet in the
    sink) was not copied then: copy again, once the sink has them."""
    return services.user_access_widened(user_id=user_id, team_ids=team_ids)
