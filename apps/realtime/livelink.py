"""Each web process watches its own live stream, and sends its sockets to catch up when it broke.

Redis Pub/Sub keeps nothing for a subscriber that is away: while a web process's connection to
Redis is down (a Redis restart, a network cut), pushes to its sockets are lost, and after the
reconnect nothing says so. The socket's client cannot tell either. So every PROBE_EVERY_S the
process sends a probe through the channel layer to a group of its own and expects it back
within PROBE_TIMEOUT_S; when it does not come (or sending fails), every socket of the process is
closed with 4503: clients reconnect from their last position and catch up from the projection's
durable history, which lost nothing (apps.realtime.catchup).
"""
import asyncio
import logging
import uuid
import weakref

from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger("apps.realtime")

PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_S = 3.0
RESYNC = 4503  # like HTTP 503: the live stream broke; reconnect with your positions


class LiveLink:
    def __init__(self):
        self._sockets: weakref.WeakSet = weakref.WeakSet()
        self._task: asyncio.Task | None = None

    def register(self, socket) -> None:
        """Watch for `socket` (an open TodoSocket); the watch runs while any is open."""
        self._sockets.add(socket)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def discard(self, socket) -> None:
        self._sockets.discard(socket)

    async def _watch(self) -> None:
        layer = get_channel_layer()
        group = f"{settings.KAFKA_TOPIC_PREFIX}probe.{uuid.uuid4().hex}"
        channel = None
        while self._sockets:
            try:
                if channel is None:
                    channel = await layer.new_channel()
                    await layer.group_add(group, channel)
                await layer.group_send(group, {"type": "probe"})
                await asyncio.wait_for(layer.receive(channel), PROBE_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - whatever broke the path, the cure is the same
                logger.warning("live stream of this process broke (%s: %s): %d sockets told to reconnect and catch up",
                               type(exc).__name__, exc, len(self._sockets))
                channel = None
                for socket in list(self._sockets):
                    self._sockets.discard(socket)
                    await socket.close(code=RESYNC)
            await asyncio.sleep(PROBE_EVERY_S)  # the probe's period, not a wait for an effect


live_link = LiveLink()
