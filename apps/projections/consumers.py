"""The projection consumer: keeps the todo read tables up to date from `todo-events`."""
import json
import logging

from django.db import DataError

from apps.projections import services
from apps.todos import events
from polystack.streaming import topics
from polystack.streaming.registry import Message, NonRetriableError, consumer

logger = logging.getLogger("apps.projections")


class RefusedByDatabaseError(NonRetriableError):
    """An event that passed its schema but that PostgreSQL refuses to store (a DataError).
    Schemas are meant to be as strict as the database; this is the net under them."""


def apply_or_isolate(*, tables: services.Tables, items: list[services.Item], live: bool = True) -> list:
    """Apply a batch; when the database refuses it (DataError: a value it cannot store), apply
    the items one by one so that only the offending ones are rejected. A DataError is never
    worth a retry: the same bytes fail the same way."""
    try:
        return services.apply_items(tables=tables, items=items, live=live)
    except DataError as exc:
        if len(items) == 1:
            logger.error("the database refuses eventId=%s: %s", items[0].envelope.get("eventId"), exc)
            return [(items[0], RefusedByDatabaseError(f"the database refuses it: {exc}".strip()[:500]))]
    return [pair for item in items for pair in apply_or_isolate(tables=tables, items=[item], live=live)]


def to_item(message: Message) -> services.Item:
    """Validate and upcast one message into what apps.projections.services applies (raises InvalidEventError)."""
    envelope = events.read(message.payload)
    text = message.value.decode() if envelope is message.payload else None
    return services.Item(
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

    def __init__(self):
        self._applied_since_check = 0  # events, toward services.snapshot_check_every()

    def handle_batch(self, messages: list[Message]) -> list[tuple[Message, NonRetriableError]]:
        items, rejected = [], []
        for message in messages:
            try:
                items.append(to_item(message))
            except NonRetriableError as exc:
                rejected.append((message, exc))
        applied = apply_or_isolate(tables=services.LIVE, items=items)
        # An event parked in an earlier batch that fails when it finally applies has no message
        # left to dead-letter (its offset was committed long ago): services.apply_items logged it.
        rejected += [(item.source, error) for item, error in applied if item.source is not None]
        self._snapshot_if_due(applied=len(items) - len(applied))
        return rejected

    def _snapshot_if_due(self, *, applied: int) -> None:
        every = services.snapshot_check_every()
        self._applied_since_check += applied
        if every and self._applied_since_check >= every:
            self._applied_since_check = 0
            services.snapshot_if_due()
