"""The due table: every reminder the todos' schedules ask for, and what the scheduler knows of
each todo. Kept from todo-events by `runconsumer reminders` (apps.reminders.consumers)."""
from django.db import models
from django.db.models import Q


class TodoSchedule(models.Model):
    """A todo as the scheduler sees it: whose it is, the last of its events applied (an event
    of that version or older changes nothing: redeliveries are no-ops), its due date, and
    whether it may still remind (not once it is completed or deleted)."""

    todo_id = models.UUIDField(primary_key=True)
    owner_id = models.BigIntegerField()
    version = models.PositiveIntegerField()
    due_date = models.DateTimeField(null=True, blank=True)
    scheduled_version = models.PositiveIntegerField(default=0)  # its latest TodoScheduled: what may fire
    closed = models.BooleanField(default=False)

    class Meta:
        verbose_name = "todo schedule"

    def __str__(self) -> str:
        return f"{self.todo_id} v{self.version}"


class Reminder(models.Model):
    """One reminder of a todo, due at `remind_at`. Unique per (todo, type, due date) in every
    state: a reminder that fired stays fired whatever comes later, so nothing can make the same
    ReminderDue twice; a cancelled one is armed again if a schedule asks for it again."""

    PENDING, FIRED, CANCELLED = "pending", "fired", "cancelled"
    STATES = [(PENDING, "pending"), (FIRED, "fired"), (CANCELLED, "cancelled")]

    todo_id = models.UUIDField()
    owner_id = models.BigIntegerField()
    # How long before the due date, ISO 8601: "P1D", "PT1H"; a snooze past the due date is "-PT10M".
    reminder_type = models.CharField(max_length=40)
    due_date = models.DateTimeField()
    remind_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=STATES, default=PENDING)
    scheduled_by = models.PositiveIntegerField()  # the version of the TodoScheduled that armed it
    fired_at = models.DateTimeField(null=True, blank=True)
    late = models.BooleanField(default=False)  # fired after its time (the scheduler was down)
    correlation_id = models.CharField(max_length=100, default="")  # of the command that armed it

    class Meta:
        constraints = [models.UniqueConstraint(fields=["todo_id", "reminder_type", "due_date"], name="reminder_once")]
        indexes = [
            models.Index(fields=["remind_at"], condition=Q(state="pending"), name="reminder_pending_due"),
            models.Index(fields=["todo_id"], name="reminder_todo"),
        ]

    def __str__(self) -> str:
        return f"{self.todo_id} {self.reminder_type} before {self.due_date:%Y-%m-%d %H:%M} ({self.state})"
