"""The notification role: `runconsumer notifications` (group notification-consumer-group).

Each todo event (by the rules in apps.todos.audience) and each ReminderDue becomes its
notification rows in one transaction, which are then sent (apps.notifications.delivery); the
offsets are committed after that. A delivery that fails (the SMTP server refuses) sends the event
to its retry topic, 2, 10 and 60 s later (each ± 20 %), and after the fourth attempt to its DLQ,
while the partition goes on with the next events (polystack.streaming.retry).
"""
from django.core.mail import get_connection

from apps.notifications import delivery, services
from apps.todos import events, reminder_events
from polystack.streaming import topics
from polystack.streaming.registry import Message, consumer
from polystack.streaming.retry import RetryPolicy


@consumer(
    name="notifications",
    topics=[topics.TODO_EVENTS, topics.REMINDER_EVENTS],
    group_id="notification-consumer-group",
    dlq_topic={topics.TODO_EVENTS: topics.TODO_EVENTS_DLQ, topics.REMINDER_EVENTS: topics.REMINDER_EVENTS_DLQ},
    retry=RetryPolicy(delays_s=(2, 10, 60), jitter=0.2),
    max_batch_size=100,
)
class Notify:
    """Turns todo events and due reminders into email and in-app notifications, and sends them."""

    def __init__(self):
        self.reminder_topics = {topics.resolve(topics.REMINDER_EVENTS), *(
            topics.resolve(topics.retry_topic(topics.REMINDER_EVENTS, level)) for level in range(1, topics.RETRIES + 1))}
        # One SMTP connection for the emails of a batch, opened at its first email, closed by
        # flush(): a handshake (and TLS) per email cost more than the email.
        self.mail = get_connection()

    def handle(self, message: Message) -> None:
        if message.topic not in self.reminder_topics:
            # services.notify has committed when it returns: the rows outlive a failed send.
            delivery.deliver_all(services.notify(events.read(message.payload)), mail=self.mail)
            return
        envelope = reminder_events.read(message.payload)
        if envelope["eventType"] == reminder_events.REMINDER_DUE:
            delivery.deliver_all(services.remind(envelope), mail=self.mail,
                                 on_sent=lambda notification: services.reminder_sent(envelope, notification))

    def flush(self) -> None:
        delivery.close_quietly(self.mail)  # no idle connection held between batches
