"""`runconsumer reminders` (group reminder-group): keeps the due table (apps.reminders.models)
from todo-events, one event at a time, each in its own transaction, idempotently."""
from apps.reminders import services
from apps.todos import events
from polystack.streaming import topics
from polystack.streaming.registry import Message, consumer


@consumer(
    name="reminders",
    topics=[topics.TODO_EVENTS],
    group_id="reminder-group",
    dlq_topic=topics.TODO_EVENTS_DLQ,
    max_batch_size=100,
)
def track_schedules(message: Message) -> None:
    """Arms, re-arms and cancels reminders as todos are scheduled, completed and deleted."""
    services.todo_event_apply(envelope=events.read(message.payload))
