"""The realtime consumer: pushes every todo event to the sockets of the users it affects.

`runconsumer realtime` (group websocket-consumer-group) reads todo-events independently of
the projection and publishes each event to every user in its `metadata.affectedUsers` (owner,
assignee, team members, a former assignee: set by the producer, apps.todos.services), through
polystack.live: a batch's pushes go to Redis in one pipeline, one round trip, each user's in
offset order. Pushes are the fast path: Pub/Sub may drop them, and clients catch up from the
projection's history (apps.realtime.selectors), so offsets are committed automatically, as the
plan has it for this group.
"""
import json

from apps.realtime.sockets import TODO_EVENT, event_frame
from apps.todos import events
from polystack import live
from polystack.streaming import topics
from polystack.streaming.registry import Message, NonRetriableError, consumer


@consumer(
    name="realtime",
    topics=[topics.TODO_EVENTS],
    group_id="websocket-consumer-group",
    dlq_topic=topics.TODO_EVENTS_DLQ,
    commit_mode="auto",
    max_batch_size=500,
)
class LivePush:
    """Pushes todo events to the live sockets of the users they affect."""

    def handle_batch(self, messages: list[Message]) -> list[tuple[Message, NonRetriableError]]:
        pushes, rejected = [], []
        for message in messages:
            try:
                envelope = events.read(message.payload)
            except NonRetriableError as exc:
                rejected.append((message, exc))
                continue
            text = message.value.decode() if envelope is message.payload else json.dumps(envelope)
            frame = event_frame(text, message.partition, message.offset, message.timestamp_ms)
            push = {"type": TODO_EVENT, "frame": frame, "partition": message.partition, "offset": message.offset}
            pushes += [(user_id, push) for user_id in envelope["metadata"]["affectedUsers"]]
        live.publish(pushes)
        return rejected
