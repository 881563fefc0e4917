"""Notifications: who was told what, on which channel, and how delivery went.

A `Notification` exists once per (event, recipient, channel): the unique constraint is what
makes a redelivered event harmless. `TodoFacts` is this app's own memory of each todo (owner,
assignee, title), kept from the events it consumes, so that it depends on no other
consumer's progress.
"""
from django.conf import settings
from django.db import models

from apps.todos.audience import CATEGORY_LABELS

EMAIL = "email"
IN_APP = "in_app"
CHANNELS = [(EMAIL, "Email"), (IN_APP, "In-app")]

REMINDER = "reminder"
# The categories people can switch on and off: those of the todo events that notify
# (metadata.category), and the reminders of due dates (Phase 4).
CATEGORIES = [*CATEGORY_LABELS.items(), (REMINDER, "A reminder of a due date")]


class NotificationPreference(models.Model):
    """An explicit choice; without one, every category is on for every channel."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences")
    category = models.CharField(max_length=32, choices=CATEGORIES)
    channel = models.CharField(max_length=16, choices=CHANNELS)
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "category", "channel"], name="notifications_one_choice")]

    def __str__(self) -> str:
        return f"{self.user} {self.category}/{self.channel}: {'on' if self.enabled else 'off'}"


class Notification(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"  # an attempt under way since claimed_at (or cut short by a kill: sent again)
        SENT = "sent"
        FAILED = "failed"  # given up by the Celery delivery before Phase 4; sent again on a redrive

    id = models.BigAutoField(primary_key=True)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=64)
    category = models.CharField(max_length=32, choices=CATEGORIES)
    channel = models.CharField(max_length=16, choices=CHANNELS)
    todo_id = models.UUIDField()
    subject = models.CharField(max_length=200)
    body = models.TextField(help_text="Plain text; the email's text part and the in-app message.")
    body_html = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    snoozed_at = models.DateTimeField(null=True, blank=True)  # a reminder email's snooze link was used

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event_id", "recipient", "channel"], name="notifications_once_per_event")
        ]
        indexes = [models.Index(fields=["recipient", "channel", "read_at"], name="notifications_unread")]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient}: {self.subject}"


class TodoFacts(models.Model):
    """What the notification rules and templates need to know of a todo."""

    todo_id = models.UUIDField(primary_key=True)
    owner_id = models.BigIntegerField()
    assignee_id = models.BigIntegerField(null=True)
    title = models.CharField(max_length=200)
    version = models.PositiveIntegerField()

    class Meta:
        verbose_name_plural = "todo facts"
