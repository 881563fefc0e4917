"""Dead letters, indexed for triage: every message of every `*-dlq` topic, once, with what people
did about it (polystack.ops.deadletters)."""
from django.conf import settings
from django.db import models


class DeadLetter(models.Model):
    """One message of a DLQ topic, as it was parked there: its bytes, its headers, and what the
    dlq.* headers say (where it came from, which group failed on it, why, after how many
    attempts). Unique by its place in the DLQ, so indexing it again changes nothing."""

    PARKED, REDRIVING, REDRIVEN, DISCARDED = "parked", "redriving", "redriven", "discarded"
    STATES = [(PARKED, "parked"), (REDRIVING, "redriving (interrupted: redrive again to finish)"),
              (REDRIVEN, "redriven"), (DISCARDED, "discarded")]

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=249)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    key = models.BinaryField(null=True)
    value = models.BinaryField(null=True)
    headers = models.JSONField(default=list, help_text="[[name, value], ...], each value as text (bytes escaped).")
    parked_at = models.DateTimeField(help_text="When the DLQ received it (the broker's timestamp).")
    indexed_at = models.DateTimeField(auto_now_add=True)
    # From the dlq.* headers (empty when a letter lacks them: anyone can write to a DLQ).
    original_topic = models.CharField(max_length=249, blank=True, default="")
    original_partition = models.IntegerField(null=True, blank=True)
    original_offset = models.BigIntegerField(null=True, blank=True)
    consumer_group = models.CharField(max_length=255, blank=True, default="")
    error_class = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(null=True, blank=True)
    correlation_id = models.CharField(max_length=100, blank=True, default="")
    # Triage.
    state = models.CharField(max_length=10, choices=STATES, default=PARKED)
    redrive_topic = models.CharField(max_length=249, blank=True, default="")
    redrive_partition = models.IntegerField(null=True, blank=True)
    # A redrive's way to be published once: the target partition's end before it produced; a
    # redrive cut short looks there for its own record (header dlq.redrive.id) before producing.
    redrive_scan_from = models.BigIntegerField(null=True, blank=True)
    redriven_offset = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["topic", "partition", "offset"], name="dead_letter_once")]
        indexes = [models.Index(fields=["topic", "state", "parked_at"], name="dead_letter_triage")]
        ordering = ["-parked_at", "-id"]

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class DeadLetterAction(models.Model):
    """Who did what to a dead letter, and when: the audit trail of triage."""

    REDRIVE, DISCARD = "redrive", "discard"

    letter = models.ForeignKey(DeadLetter, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=10, choices=[(REDRIVE, "redrive"), (DISCARD, "discard")])
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, help_text="Who, as named then (a shell user, or the admin's user).")
    detail = models.TextField(blank=True, default="", help_text="The reason of a discard; the target of a redrive.")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_name}"


class DlqAlert(models.Model):
    """When the site's admins were last told of new letters in a DLQ topic (throttling)."""

    topic = models.CharField(max_length=249, primary_key=True)
    last_sent_at = models.DateTimeField()

    class Meta:
        verbose_name = "DLQ alert"
