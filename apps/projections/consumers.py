"""The projection consumer: keeps the todo read tables up to date from `todo-events`."""
import json

from apps.projections import store
from apps.todos import events
from polystack.streaming import topics
from polystack.streaming.registry import Message, NonRetriableError, consumer


def to_item(message: Message) -> store.Item:
    """Validate and upcast one message into what the store applies (raises InvalidEventError)."""
    envelope = events.read(message.payload)
    text = message.value.decode() if envelope is message.payload else None
    return store.Item(
        envelope=envelope,
        json=text if text is not None else json.dumps(envelope),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        source=message,
    )


@consumer(
    name="projections",
    topics=[topics.TODO_EVENTS],
    group_id="projection-group",
    dlq_topic=topics.TODO_EVENTS_DLQ,
    max_batch_size=1000,
    # Live, batches are often one event: a commit request for each cost the broker more than
    # the event. The read tables keep their own offsets; a redelivery changes nothing.
    commit_interval_ms=1000,
)
class TodoProjection:
    """Maintains the todo read tables (current todos, each todo's history) from todo-events."""

    def handle_batch(self, messages: list[Message]) -> list[tuple[Message, NonRetriableError]]:
        items, rejected = [], []
        for message in messages:
            try:
                items.append(to_item(message))
            except NonRetriableError as exc:
                rejected.append((message, exc))
        rejected += [(item.source, error) for item, error in store.apply_items(tables=store.LIVE, items=items)]
        return rejected
