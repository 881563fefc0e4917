"""The write side: each todo's decision state, and the transactional outbox.

Commands are checked against TodoState and their events stored in OutboxEvent in the same
PostgreSQL transaction; `runrelay` publishes the outbox to Kafka. What users read comes from
the projection (apps.projections), never from here.
"""
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class TodoState(models.Model):
    """What the write side must know to decide a command: owner, version, and the facts the
    rules look at. Not a read model."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField()
    # Kept so that a partial update can be merged under the row lock, without trusting a
    # possibly stale read model.
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    deleted = models.BooleanField(default=False)
    completed = models.BooleanField(default=False)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "todo (write-side state)"
        verbose_name_plural = "todos (write-side state)"

    def __str__(self) -> str:
        return f"{self.id} v{self.version}"


class OutboxEvent(models.Model):
    """An event waiting to be published, written in the transaction of the command.

    The relay reads unsent rows in id order and marks them sent after the broker's ack. It
    never keeps an `id > last_id` cursor: ids are allocated before commit, so a row can
    become visible after a higher id was already published. Selecting `sent_at IS NULL`
    picks up such late rows; per-todo order still holds because commands on one todo are
    serialised by the lock on its TodoState row.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    topic = models.CharField(max_length=249)
    key = models.CharField(max_length=64)
    envelope = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["id"], name="todos_outbox_unsent", condition=Q(sent_at__isnull=True))]

    def __str__(self) -> str:
        return f"{self.envelope.get('eventType')} {self.event_id}"
