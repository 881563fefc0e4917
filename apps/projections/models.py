"""The read side: tables maintained from `todo-events` by `runconsumer projections`.

Every table here can be dropped and rebuilt from the events (`manage.py replay projections`).
They are written only by apps.projections.services, in raw SQL, so that the same code can fill
the live tables or a rebuild beside them.
"""
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.fields.json import KT


class TodoView(models.Model):
    """The current state of each todo, as the API shows it. Deleted todos stay as tombstones
    (deleted_at set) so that late duplicates are recognised; the API hides them."""

    id = models.UUIDField(primary_key=True)
    user_id = models.BigIntegerField(db_index=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    priority = models.CharField(max_length=10)
    completed = models.BooleanField(default=False)
    completed_at = models.DateTimeField(null=True, blank=True)
    assigned_to = models.BigIntegerField(null=True, blank=True, db_index=True)
    due_date = models.DateTimeField(null=True, blank=True)
    reminder_times = ArrayField(models.DateTimeField(), default=list, blank=True)  # TodoScheduled's, in order
    team_id = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField()

    class Meta:
        verbose_name = "todo (projection)"
        verbose_name_plural = "todos (projection)"

    def __str__(self) -> str:
        return self.title


class TodoEvent(models.Model):
    """Each todo's event history: the envelopes, in aggregateVersion order."""

    event_id = models.UUIDField(primary_key=True)
    todo_id = models.UUIDField()
    aggregate_version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    envelope = models.JSONField()
    partition = models.IntegerField()
    offset = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["todo_id", "aggregate_version"], name="projections_event_per_version")
        ]
        # Live clients catch up by Kafka position (apps.realtime).
        indexes = [models.Index(fields=["partition", "offset"], name="projections_event_position"),
                   # The admin's trace of a correlationId (polystack.ops.trace, apps/projections/traces.py).
                   models.Index(KT("envelope__correlationId"), name="projections_event_correlation")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.todo_id} v{self.aggregate_version}"


class ParkedEvent(models.Model):
    """An event that came before the versions it follows (a gap): kept here, in the batch's
    transaction, until the missing version arrives; then it applies and its row goes. Gaps have
    legitimate causes (a second applier racing, an event of a schema this code does not know
    yet), so a gap is a wait, not a rejection. Anything parked for long is worth a look."""

    event_id = models.UUIDField(primary_key=True)
    todo_id = models.UUIDField(db_index=True)
    aggregate_version = models.PositiveIntegerField()
    envelope = models.JSONField()
    topic = models.CharField(max_length=249)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    parked_at = models.DateTimeField()
    reason = models.CharField(max_length=200)

    class Meta:
        verbose_name = "parked event (waiting for an earlier version)"
        verbose_name_plural = "parked events (waiting for an earlier version)"

    def __str__(self) -> str:
        return f"{self.todo_id} v{self.aggregate_version}: {self.reason}"


class ProjectionOffset(models.Model):
    """The next offset to apply per partition, written in the same transaction as the rows:
    the projection's exact position, which snapshots record and replays start from."""

    topic = models.CharField(max_length=249)
    partition = models.IntegerField()
    next_offset = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["topic", "partition"], name="projections_offset_per_partition")]


class Snapshot(models.Model):
    """A consistent copy of the projection and the offsets it corresponds to."""

    created_at = models.DateTimeField(auto_now_add=True)
    offsets = models.JSONField(help_text='{"<topic>:<partition>": next_offset}')
    todo_count = models.PositiveIntegerField()
    event_count = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=32, help_text="periodic or on demand")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"snapshot {self.pk} ({self.event_count} events)"


class SnapshotTodo(models.Model):
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="+")
    row = models.JSONField()


class SnapshotEvent(models.Model):
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="+")
    row = models.JSONField()


class SnapshotParked(models.Model):
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="+")
    row = models.JSONField()

    class Meta:
        verbose_name = "snapshot parked event"


class ProjectionJob(models.Model):
    """A replay or snapshot asked for in the admin, run by a Celery worker, with its progress."""

    class Kind(models.TextChoices):
        REPLAY = "replay", "Replay from the beginning"
        REPLAY_FROM_SNAPSHOT = "replay-from-snapshot", "Replay from the latest snapshot"
        SNAPSHOT = "snapshot", "Take a snapshot"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.REPLAY)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, editable=False)
    progress = models.TextField(blank=True, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, editable=False, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, editable=False)
    finished_at = models.DateTimeField(null=True, editable=False)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.status})"
