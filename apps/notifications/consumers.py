"""The notification consumer: `runconsumer notifications` (group notification-consumer-group,
manual commits). Each event becomes its notification rows in one transaction, and their
delivery is queued once that transaction committed; offsets are committed after that."""
from apps.notifications import services, tasks
from apps.todos import events
from polystack.streaming import topics
from polystack.streaming.registry import Message, consumer


@consumer(
    name="notifications",
    topics=[topics.TODO_EVENTS],
    group_id="notification-consumer-group",
    dlq_topic=topics.TODO_EVENTS_DLQ,
    max_batch_size=100,
)
def notify(message: Message) -> None:
    """Turns todo events into email and in-app notifications, by the rules in apps.notifications.rules."""
    envelope = events.read(message.payload)
    # services.notify has committed when it returns: a worker finds the rows it is told about.
    # Should queueing fail, the batch is retried and notify() returns the same pending rows.
    for notification_id in services.notify(envelope):
        tasks.deliver.delay(notification_id)
