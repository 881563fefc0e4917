"""The write side: each todo's decision state, and the transactional outbox.

Commands are checked against TodoState and their events stored in OutboxEvent in the same
PostgreSQL transaction; `runrelay` publishes the outbox to Kafka. What users read comes from
the projection (apps.projections), never from here.
"""
import uuid

from django.conf import settings
from django.db import models


class Team(models.Model):
    """People who share todos: a todo created for a team is seen by all its members, and may
    be assigned to any of them. Membership is plain state, not events: who sees what is
    decided by the current members."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_teams")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True,
                                     help_text="Everyone who sees the team's todos (the owner included).")
    created_at = models.DateTimeField(auto_now_add=True)

    # Every event of a team todo names its members (metadata.affectedUsers, at most 10,000 by
    # the schema): a team stays well below that.
    MAX_MEMBERS = 1000

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class TeamInvitation(models.Model):
    """An owner's invitation to join a team: nobody becomes a member (and sees the team's todos,
    and is seen by its members) without accepting. Accepting or declining removes it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    invitee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_invitations")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "invitee"], name="todos_one_invitation_per_team")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.invitee} to {self.team}"


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
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    # The schedule: its due date (a snooze needs one), and the version of the TodoScheduled that
    # set it. The scheduler fires a reminder only if the schedule that armed it is still this one.
    due_date = models.DateTimeField(null=True, blank=True)
    schedule_version = models.PositiveIntegerField(default=0)
    priority = models.CharField(max_length=10, default="medium")
    # Who last changed each field, and when (Phase 5: a device's concurrent edit is told from a
    # sequential one by these): {"title": {"version": 7, "hlc": "<ms>:<counter>", "device":
    # "<uuid>" or null for the REST API}, ...}. Fields never changed since creation have none.
    field_clocks = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "todo (write-side state)"
        verbose_name_plural = "todos (write-side state)"

    def __str__(self) -> str:
        return f"{self.id} v{self.version}"


class OutboxEvent(models.Model):
    """An event waiting to be published, written in the transaction of the command, as the
    exact bytes (JSON text) the relay will send, with its headers beside it: the relay does no
    JSON work. The relay deletes a row once the broker acknowledged it, so this table holds
    only what is still on its way; Kafka is the record.

    The relay never trusts an `id > last_id` cursor alone: ids are allocated before commit, so
    a row can become visible after a higher id was already read (see apps.todos.relay).
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    topic = models.CharField(max_length=249)
    key = models.CharField(max_length=64)
    payload = models.TextField(help_text="The envelope as JSON text, exactly as published.")
    event_type = models.CharField(max_length=64)
    schema_version = models.PositiveSmallIntegerField()
    correlation_id = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "outbox event (waiting for the relay)"
        verbose_name_plural = "outbox events (waiting for the relay)"

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
