"""Celery beat tasks of the analytics app: health samples and partition upkeep."""
from datetime import UTC, datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.analytics import partitions, services


def sampling_slot(now: datetime) -> datetime:
    """The slot `now` falls in: a late or repeated run rewrites its slot, it adds none."""
    every = timedelta(seconds=settings.ANALYTICS_HEALTH_EVERY_S)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return now - (now - epoch) % every


@shared_task(acks_late=True)
def sample_health() -> int:
    return services.health_sample_record(at=sampling_slot(timezone.now()))


@shared_task(acks_late=True)
def maintain_partitions() -> list[str]:
    return partitions.maintain()
