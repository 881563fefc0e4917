"""`runconsumer reminders` (group reminder-group): keeps the due table (apps.reminders.models)
from todo-events (schedules, completions, deletions) and reminder-events (snoozes), one event
at a time, each in its own transaction, idempotently. The scheduler (`runscheduler`) fires it."""
from apps.todos import reminder_events
from apps.reminders import services
from apps.todos import events
from polystack.streaming import topics
from polystack.streaming.registry import Message, consumer


@consumer(
    name="reminders",
    topics=[topics.TODO_EVENTS, topics.REMINDER_EVENTS],
    group_id="reminder-group",
    dlq_topic={topics.TODO_EVENTS: topics.TODO_EVENTS_DLQ, topics.REMINDER_EVENTS: topics.REMINDER_EVENTS_DLQ},
    max_batch_size=100,
)
class TrackSchedules:
    """Arms, re-arms and cancels reminders as todos are scheduled, completed and deleted, and snoozed."""

    def __init__(self):
        self.reminder_topic = topics.resolve(topics.REMINDER_EVENTS)

    def handle(self, message: Message) -> None:
        if message.topic != self.reminder_topic:
            services.todo_event_apply(envelope=events.read(message.payload))
            return
        envelope = reminder_events.read(message.payload)
        if envelope["eventType"] == reminder_events.REMINDER_SNOOZED:
            services.snooze_apply(envelope=envelope)
        # ReminderDue and ReminderSent are the scheduler's and the notifications' news: nothing to keep.
