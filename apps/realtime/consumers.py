"""The realtime consumer: pushes every todo event to the sockets of the users it affects.

`runconsumer realtime` (group websocket-consumer-group) reads todo-events independently of
the projection and sends each event to the Channels group of every user in its
`metadata.affectedUsers` (owner, assignee, team members, a former assignee: set by the
producer, apps.todos.services). Pushes are the fast path: the channel layer may drop them,
and clients catch up from the projection's history (apps.realtime.catchup), so offsets are
committed automatically, as the plan has it for this group.
"""
import asyncio
import json

from channels.layers import get_channel_layer

from apps.realtime.groups import user_group
from apps.realtime.sockets import event_frame
from apps.todos import events
from polystack.streaming import topics
from polystack.streaming.registry import Message, NonRetriableError, consumer

PARALLEL_GROUPS = 32  # redis-py's asyncio pool holds 100 connections by default


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

    def __init__(self):
        # One loop for the life of the process: channels-redis keeps its connections per loop.
        self._loop = asyncio.new_event_loop()
        self._layer = get_channel_layer()

    def handle_batch(self, messages: list[Message]) -> list[tuple[Message, NonRetriableError]]:
        per_group: dict[str, list[dict]] = {}
        rejected = []
        for message in messages:
            try:
                envelope = events.read(message.payload)
            except NonRetriableError as exc:
                rejected.append((message, exc))
                continue
            text = message.value.decode() if envelope is message.payload else json.dumps(envelope)
            frame = event_frame(text, message.partition, message.offset, message.timestamp_ms)
            push = {"type": "todo.event", "frame": frame,
                    "partition": message.partition, "offset": message.offset}
            for user_id in envelope["metadata"]["affectedUsers"]:
                per_group.setdefault(user_group(user_id), []).append(push)
        if per_group:
            self._loop.run_until_complete(self._send(per_group))
        return rejected

    async def _send(self, per_group: dict[str, list[dict]]) -> None:
        # Groups side by side, but no more at once than the layer's Redis pool has
        # connections: past that, channels-redis fails with MaxConnectionsError.
        gate = asyncio.Semaphore(PARALLEL_GROUPS)

        async def in_order(group: str, pushes: list[dict]) -> None:
            async with gate:
                for push in pushes:  # one group's frames in offset order
                    await self._layer.group_send(group, push)

        await asyncio.gather(*(in_order(group, pushes) for group, pushes in per_group.items()))
