"""Multi-device sync: the devices of each user, and what the sink materialised of
device-sync-events — each user's records by offset, and each user's todos at that offset.

Everything but Device can be dropped and rebuilt by reading device-sync-events again (the sink
is idempotent by offset). Device keeps how far each device synced and which of its mutations
applied: that is the device's side of the protocol, not a projection.
"""
import uuid

from django.conf import settings
from django.db import models

from apps.sync.conflicts import LWW, POLICIES


class Device(models.Model):
    """A client of one user (a browser, the terminal client, an app) with its sync position."""

    WEB, DESKTOP, MOBILE, CLI = "web", "desktop", "mobile", "cli"
    PLATFORMS = [(WEB, "web"), (DESKTOP, "desktop"), (MOBILE, "mobile"), (CLI, "cli")]
    MAX_PER_USER = 50

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="devices")
    name = models.CharField(max_length=100)
    platform = models.CharField(max_length=10, choices=PLATFORMS)
    created_at = models.DateTimeField(auto_now_add=True)
    # Online state: sockets open now (a web process that dies leaves its count; `last_seen_at`,
    # refreshed while a socket is open, tells a stale count from a live one).
    connections = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # How far it synced: the last offset it acknowledged in its user's partition of
    # device-sync-events (-1: nothing yet), and which partition that is.
    acked_partition = models.IntegerField(null=True, blank=True)
    acked_offset = models.BigIntegerField(default=-1)
    # The user's stream epoch its copy is from: a device behind its user's (they left a team
    # since) takes a snapshot; -1, its copy continues nothing (new, or its filters changed).
    epoch = models.IntegerField(default=-1)
    # Its mutations: each applies once, in order (lastMutationId + 1).
    last_mutation_id = models.BigIntegerField(default=0)
    # What it asks to receive: {"own": true} only its user's own todos, {"teams": [ids]} only
    # those teams' todos (besides its own); empty: everything its user may see.
    filters = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.platform})"


class SyncRecord(models.Model):
    """One record of device-sync-events: an event for one recipient, with the todo after it."""

    partition = models.IntegerField()
    offset = models.BigIntegerField()
    user_id = models.BigIntegerField()
    todo_id = models.UUIDField()
    event_id = models.UUIDField()
    version = models.PositiveIntegerField()
    record = models.TextField(help_text="The record's value as JSON text, as devices receive it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partition", "offset"], name="sync_record_position")]
        indexes = [models.Index(fields=["user_id", "offset"], name="sync_record_user_offset")]


class SyncTodo(models.Model):
    """Each user's todos as of the last record materialised for them: what a reset sends."""

    user_id = models.BigIntegerField()
    todo_id = models.UUIDField()
    version = models.PositiveIntegerField()
    visible = models.BooleanField()
    todo = models.JSONField(null=True)  # None once deleted

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "todo_id"], name="sync_todo_per_user")]


class SyncUser(models.Model):
    """Where each user's stream stands in the sink: their partition, the offset of their last
    record materialised, and the highest offset of theirs no longer held (retention)."""

    user_id = models.BigIntegerField(primary_key=True)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    pruned_through = models.BigIntegerField(default=-1)
    # Raised when what the user may see changed without an event (they left a team): devices
    # behind it take a snapshot.
    epoch = models.PositiveIntegerField(default=0)


class SyncSettings(models.Model):
    """A user's sync choices: how concurrent edits of the same field of their todos end
    (apps.sync.conflicts). The todo's owner's choice holds for everyone who edits it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE,
                                related_name="sync_settings")
    conflict_policy = models.CharField(max_length=10, choices=POLICIES, default=LWW)

    class Meta:
        verbose_name_plural = "sync settings"


class Conflict(models.Model):
    """Two concurrent changes of one field under the manual policy: the todo kept the server's
    value (`remote_value`); a person who may change the field picks one, or a third."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    todo_id = models.UUIDField(db_index=True)
    field = models.CharField(max_length=20)
    base_version = models.PositiveIntegerField()
    base_value = models.JSONField(null=True)  # None: not known (the device's base is no longer held)
    local_value = models.JSONField(null=True)  # the pushing device's
    remote_value = models.JSONField(null=True)  # the todo's, kept
    local_device = models.ForeignKey(Device, null=True, on_delete=models.SET_NULL, related_name="+")
    remote_device_id = models.UUIDField(null=True)  # None: a change made without a device
    detected_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    resolution = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["todo_id", "resolved_at"], name="sync_conflict_open")]

    def __str__(self) -> str:
        return f"{self.field} of {self.todo_id}"
