"""Celery beat tasks of the sync app: retention of the sink's records."""
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.sync import services


@shared_task(acks_late=True)
def prune_records() -> int:
    return services.records_prune(older_than=timezone.now() - timedelta(days=settings.SYNC_RETENTION_DAYS))
