"""Retention of the sink's records: what is older than SYNC_RETENTION_DAYS goes, and each user's
stream remembers up to where (pruned_through), so a device behind it is sent a snapshot."""
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.sync import services, tasks
from apps.sync.models import SyncRecord, SyncUser
from tests.sync.synthetic import store_records


def stored_for(user: int, count: int, *, first_offset: int) -> None:
    store_records(user, count, first_offset=first_offset, step=2, seed=user)


@pytest.mark.django_db
def test_old_records_go_and_the_stream_remembers_where_they_ended(settings):
    stored_for(501, 30, first_offset=0)
    stored_for(502, 10, first_offset=1)
    week_ago = timezone.now() - timedelta(days=settings.SYNC_RETENTION_DAYS, hours=1)
    old = list(SyncRecord.objects.filter(user_id=501).order_by("offset").values_list("id", flat=True)[:20])
    SyncRecord.objects.filter(id__in=old).update(created_at=week_ago)

    assert tasks.prune_records() == 20
    assert SyncRecord.objects.filter(user_id=501).count() == 10 and SyncRecord.objects.filter(user_id=502).count() == 10
    heads = {u.user_id: (u.offset, u.pruned_through) for u in SyncUser.objects.all()}
    assert heads[501] == (58, 38), "its last record at 58; the 20th, at offset 38, is the last pruned"
    assert heads[502] == (19, -1), "nothing of 502's was old"
    assert tasks.prune_records() == 0, "a second run finds nothing"


@pytest.mark.django_db
def test_pruning_goes_in_batches(settings):
    stored_for(503, 25, first_offset=0)
    SyncRecord.objects.update(created_at=timezone.now() - timedelta(days=30))
    assert services.records_prune(older_than=timezone.now(), batch=10) == 25
    assert SyncUser.objects.get(user_id=503).pruned_through == 48
