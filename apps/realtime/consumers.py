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
from channels_redis.pubsub import RedisPubSubChannelLayer

from polystack.live import user_group
from apps.realtime.sockets import event_frame
from apps.todos import events
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
        """Publish a batch's pushes. channels-redis sends each group_send as its own PUBLISH and
        waits for its answer, one at a time per Redis connection: four users to an event made
        four round trips, and under load the consumer fell behind on them. Here the whole batch
        goes to each Redis shard in one pipeline, one round trip, each group's frames in offset
        order. It uses the pub/sub layer's own group naming, sharding and connection (pinned
        channels-redis; the realtime tests catch a change), and plain group_send elsewhere."""
        if not isinstance(self._layer, RedisPubSubChannelLayer):
            for group, pushes in per_group.items():
                for push in pushes:
                    await self._layer.group_send(group, push)
            return
        layer = self._layer._get_layer()  # this event loop's RedisPubSubLoopLayer
        per_shard: dict[object, list[tuple[str, bytes]]] = {}
        for group, pushes in per_group.items():
            channel = layer._get_group_channel_name(group)
            per_shard.setdefault(layer._get_shard(channel), []).extend(
                (channel, self._layer.serialize(push)) for push in pushes
            )
        for shard, messages in per_shard.items():
            async with shard._lock:
                shard._ensure_redis()
                async with shard._redis.pipeline(transaction=False) as pipe:
                    for channel, data in messages:
                        pipe.publish(channel, data)
                    await pipe.execute()
