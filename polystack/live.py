"""Live pushes to users' open sockets, over Redis Pub/Sub: both ends are ours.

Any process publishes (the realtime consumer, a Celery worker, a web request): `publish()`
takes (user id, message) pairs and sends the whole batch in one pipeline, one round trip;
each message, a JSON object with a "type", goes to the user's Redis channel
`<KAFKA_TOPIC_PREFIX>live.user.<id>` (the prefix keeps systems that share one Redis apart).

Each web process subscribes through one `Hub`: one Redis connection, subscribed to the
channels of the users with a socket open in this process (a user's first socket subscribes,
the last one unsubscribes), which hands each message to that user's sockets, in the order it
was published. A message is decoded once per process, however many sockets it goes to.

Pub/Sub keeps nothing for a subscriber that is away, so delivery is best effort: clients catch
up from the projection's history. What the Hub does promise is to say when its stream broke,
which Redis itself never does: when its connection fails, or a probe it sends itself every
PROBE_EVERY_S does not come back within PROBE_TIMEOUT_S, it tells every socket
(`Subscriber.stream_broke`) and starts afresh.

The contract, tested in tests/test_live.py: what is published to a user after one of their
sockets joined reaches every socket of that user in this process, in publish order, once;
nothing reaches a socket that left; a broken stream is reported.
"""
import asyncio
import functools
import json
import logging
import re
import uuid
import weakref
from collections.abc import Iterable
from typing import Protocol

import redis
import redis.asyncio
from django.conf import settings
from django.db import transaction
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

logger = logging.getLogger("polystack.live")

# A live message carrying a new in-app notification's frame (apps.notifications): every socket
# of its user sends the frame on, the page's (/ws/sync/) as the Phase 2 one (/ws/todos/).
NOTIFICATION_NEW = "notification.new"
PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_S = 3.0
SUBSCRIBE_TIMEOUT_S = 5.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def user_channel(user_id: int | str) -> str:
    return _UNSAFE.sub("-", f"{settings.KAFKA_TOPIC_PREFIX}live.user.{user_id}")


# --- publishing ---------------------------------------------------------------------------


@functools.cache
def _publisher(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)


def publish(pushes: Iterable[tuple[int | str, dict]]) -> int:
    """Send each (user id, message) in order, all in one round trip; returns how many. Raises
    redis.RedisError when Redis cannot be reached (the caller decides: retry, or log)."""
    client = _publisher(settings.REDIS_URL)
    # One event goes to several users: each message is encoded once. The message is kept with its
    # text, so that its id cannot be reused by another during the call.
    encoded: dict[int, tuple[dict, str]] = {}
    with client.pipeline(transaction=False) as pipe:
        count = 0
        for user_id, message in pushes:
            if id(message) not in encoded:
                encoded[id(message)] = (message, json.dumps(message))
            pipe.publish(user_channel(user_id), encoded[id(message)][1])
            count += 1
        if count:
            pipe.execute()
    return count


def tell_after_commit(user_id: int | str, message: dict) -> None:
    """Publish one message to the user once the current transaction commits (at once outside
    one). Redis being away loses it, logged: the change it tells of stands, and sockets find
    out by their own re-checks."""

    def send():
        try:
            publish([(user_id, message)])
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.warning("could not tell user %s's sockets %s: %s", user_id, message["type"], exc)

    transaction.on_commit(send)


# --- subscribing --------------------------------------------------------------------------


class Subscriber(Protocol):
    """An open socket, as the Hub sees it."""

    async def live_message(self, message: dict) -> None:
        """One message for its user; awaited in publish order (keep it quick: the Hub's one
        reader waits, so hand slow work to a task)."""

    async def stream_broke(self) -> None:
        """Messages may have been lost: the socket should make its client catch up."""


class StreamBrokenError(Exception):
    """Redis cannot be reached by this process's hub now."""


class Hub:
    """One process's subscriptions (see the module's docstring). Bound to the event loop that
    first uses it; use it from that loop only."""

    def __init__(self, url: str | None = None):
        self._url = url
        self._sockets: dict[str, set[Subscriber]] = {}  # channel -> sockets
        self._confirming: dict[str, asyncio.Event] = {}  # channel -> set once Redis confirmed the SUBSCRIBE
        self._client: redis.asyncio.Redis | None = None
        self._pubsub = None
        self._tasks: list[asyncio.Task] = []
        self._probe_channel = ""
        self._probe_back = asyncio.Event()
        self._connecting: asyncio.Lock | None = None

    async def join(self, user_id: int | str, socket: Subscriber) -> None:
        """Deliver the user's messages to `socket` from now on: when this returns, Redis has
        confirmed the subscription, so whatever is published after reaches the socket. Raises
        StreamBrokenError when Redis cannot be reached (nothing would be delivered: the caller
        should refuse the socket)."""
        channel = user_channel(user_id)
        await self._connected()
        sockets = self._sockets.setdefault(channel, set())
        sockets.add(socket)
        if len(sockets) == 1:
            self._confirming[channel] = asyncio.Event()
            try:
                await self._pubsub.subscribe(channel)
            except (redis.RedisError, OSError) as exc:
                await self._broke(exc)
                raise StreamBrokenError(str(exc)) from exc
        confirmed = self._confirming.get(channel)
        if confirmed is not None:
            try:
                await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_TIMEOUT_S)
            except TimeoutError as exc:
                await self._broke(exc)
                raise StreamBrokenError("Redis did not confirm the subscription") from exc
            if socket not in self._sockets.get(channel, ()):
                raise StreamBrokenError("the stream broke while subscribing")

    async def leave(self, user_id: int | str, socket: Subscriber) -> None:
        channel = user_channel(user_id)
        sockets = self._sockets.get(channel)
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        if not sockets:
            del self._sockets[channel]
            try:
                await self._pubsub.unsubscribe(channel)
            except (redis.RedisError, OSError):
                pass  # the connection is gone, and the subscription with it

    @property
    def subscribed_users(self) -> int:
        return len(self._sockets)

    async def _connected(self) -> None:
        if self._pubsub is not None:
            return
        self._connecting = self._connecting or asyncio.Lock()
        async with self._connecting:
            if self._pubsub is not None:
                return
            client = redis.asyncio.Redis.from_url(self._url or settings.REDIS_URL, retry=Retry(NoBackoff(), 0),
                                                  socket_connect_timeout=5)
            pubsub = client.pubsub()
            self._probe_channel = f"{settings.KAFKA_TOPIC_PREFIX}live.probe.{uuid.uuid4().hex}"
            try:
                await pubsub.subscribe(self._probe_channel)
            except (redis.RedisError, OSError) as exc:
                await pubsub.aclose()
                await client.aclose()
                raise StreamBrokenError(str(exc)) from exc
            self._pubsub, self._client = pubsub, client
            self._tasks = [asyncio.create_task(self._read(pubsub)), asyncio.create_task(self._probe(pubsub))]

    async def _read(self, pubsub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                channel = message["channel"].decode()
                if message["type"] == "subscribe":
                    confirmed = self._confirming.pop(channel, None)
                    if confirmed is not None:
                        confirmed.set()
                    continue
                if message["type"] != "message":
                    continue
                if channel == self._probe_channel:
                    self._probe_back.set()
                    continue
                sockets = self._sockets.get(channel)
                if not sockets:
                    continue  # unsubscribed meanwhile
                try:
                    decoded = json.loads(message["data"])
                except ValueError:
                    decoded = None
                if not isinstance(decoded, dict) or not isinstance(decoded.get("type"), str):
                    logger.warning("a live message on %s is not a JSON object with a type; skipped", channel)
                    continue
                for socket in list(sockets):
                    try:
                        await socket.live_message(decoded)
                    except Exception:  # noqa: BLE001 - one socket's failure is not the others'
                        logger.exception("a socket failed to take a live message")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever broke the connection, the cure is the same
            await self._broke(exc)

    async def _probe(self, pubsub) -> None:
        while True:
            await asyncio.sleep(PROBE_EVERY_S)  # the probe's period, not a wait for an effect
            self._probe_back.clear()
            try:
                await self._client.publish(self._probe_channel, b"probe")
                await asyncio.wait_for(self._probe_back.wait(), PROBE_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                await self._broke(exc)
                return

    async def _broke(self, exc: BaseException) -> None:
        """Forget the connection and every subscription; tell the sockets."""
        if self._pubsub is None:
            return
        pubsub, client, tasks = self._pubsub, self._client, self._tasks
        self._pubsub, self._tasks = None, []
        sockets = {socket for group in self._sockets.values() for socket in group}
        self._sockets.clear()
        for confirming in self._confirming.values():
            confirming.set()  # wakes the joiners, who find themselves gone
        self._confirming.clear()
        logger.warning("live stream of this process broke (%s: %s): %d sockets told to catch up",
                       type(exc).__name__, exc, len(sockets))
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        for socket in sockets:
            try:
                await socket.stream_broke()
            except Exception:  # noqa: BLE001
                logger.exception("a socket failed to hear that the stream broke")
        for closing in (pubsub.aclose(), client.aclose()):
            try:
                await closing
            except Exception:  # noqa: BLE001 - it is broken already
                pass


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """The hub of the running event loop: one per process under daphne, which runs one loop."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found
