"""`ws://<host>/ws/todos/`: live todo events and notifications for the signed-in user.

Connect with the session cookie, or `?token=<DRF token>`; no or bad credentials close the
socket with 4401. Add `after=<partition>:<offset>,...` (the position of the last event seen
on each partition, as the frames carry it) and the socket first sends everything newer the
user may see, then `{"type": "ready"}`, then live frames. Frames:

  server → client
    {"type": "event", "event": <envelope>, "position": {"partition": p, "offset": o}}
        live frames add "publishedAt": the event's Kafka timestamp (ms since the epoch)
    {"type": "notification", "notification": {...}}
    {"type": "ready", "complete": true|false, "positions": {"<p>": <offset>}}
        complete is false when catch-up was cut short (more than MAX_CATCHUP_EVENTS missed, or
        the projection lagged): reload the list over REST, then reconnect with `positions`.
    {"type": "error", "error": "..."}        a malformed frame; the socket stays open
    {"type": "pong"}
    {"type": "reload"}    what the user may see changed (they left a team): read the list afresh
    {"type": "analytics.updated", "windows": [...]}   analytics windows the user may see changed
        (sent by apps.analytics' sink): a dashboard reads /api/analytics/ again
  client → server
    {"type": "catchup", "todoId": "...", "afterVersion": n, "beforeVersion": m}
        a gap seen in a todo's aggregateVersion (live pushes may be dropped): the
        socket sends that todo's events n < version < m from the projection's history, at
        most MAX_TODO_CATCHUP_EVENTS of them (ask again from the last one for more).
    {"type": "ping"}

Frames from the client larger than MAX_FRAME_BYTES close the socket (4413). When the live
stream of the web process broke (Redis away: pushes were lost), the socket closes with 4503:
reconnect with your positions and catch up (polystack.live, the Hub). A socket whose
session or token no longer holds (logout, token deleted, user deactivated, password changed)
closes with 4401 (apps.realtime.access).
"""
import asyncio
import json
import logging
import re
import time
import uuid
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.realtime import access, selectors
from polystack import live, throttle

logger = logging.getLogger("apps.realtime")

UNAUTHENTICATED = 4401
TOO_MANY = 4429  # like HTTP 429: connects per user over WS_CONNECT_RATE; wait and come back
TOO_BIG = 4413  # like HTTP 413; daphne lets applications close with 1000 or 3000-4999 only
RESYNC = 4503  # like HTTP 503: the live stream broke; reconnect with your positions
TODO_EVENT = "todo.event"  # a live message of the realtime consumer: {frame, partition, offset}
MAX_HELD = 5000  # live messages kept while a socket catches up; past it, it reconnects (4503)
MAX_FRAME_BYTES = 4096
MAX_PARTITIONS = 1024
POSITIONS = re.compile(r"^\d{1,5}:-?\d{1,19}(,\d{1,5}:-?\d{1,19})*$")


def event_frame(envelope: dict | str, partition: int, offset: int, published_at_ms: int | None = None) -> str:
    """The text of an event frame; `envelope` may already be JSON text (as stored)."""
    text = envelope if isinstance(envelope, str) else json.dumps(envelope)
    published = "" if published_at_ms is None else f', "publishedAt": {published_at_ms}'
    return (f'{{"type": "event", "event": {text}, '
            f'"position": {{"partition": {partition}, "offset": {offset}}}{published}}}')


def parse_positions(raw: str) -> dict[int, int] | None:
    if not raw:
        return {}
    if len(raw) > 16 * MAX_PARTITIONS or not POSITIONS.match(raw):
        return None
    return {int(p): int(o) for p, o in (pair.split(":") for pair in raw.split(","))}


class TodoSocket(AsyncWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=UNAUTHENTICATED)
            return
        wait = await sync_to_async(throttle.hit, thread_sensitive=False)(f"ws:connect:{user.pk}",
                                                                         settings.WS_CONNECT_RATE)
        if wait:
            logger.warning("user %s connects too often: refused for %s s", user.pk, wait)
            await self.accept()
            await self.close(code=TOO_MANY)
            return
        self.user_id = user.pk
        # A blank `after=` counts: it asks for everything (nothing seen yet).
        query = {name: values[0] for name, values in
                 parse_qs(self.scope.get("query_string", b"").decode("latin1"), keep_blank_values=True).items()}
        # What this socket signed in with, to re-check later (a token wins over the cookie).
        session = self.scope.get("session")
        self.credential = (("token", query["token"][:64]) if query.get("token")
                           else ("session", getattr(session, "session_key", None)))
        self.reached: dict[int, int] = {}  # live frames at or below these offsets were caught up
        # Live messages wait here while the socket catches up, so that they follow what it sent.
        self.held: list[dict] | None = []
        self.checks: set[asyncio.Task] = set()  # credential checks asked for by live messages
        positions = parse_positions(query.get("after", ""))
        try:
            await live.hub().join(user.pk, self)
        except live.StreamBrokenError as exc:
            logger.warning("socket of user %s refused for now: the live stream is down (%s)", user.pk, exc)
            await self.accept()
            await self.close(code=RESYNC)  # come back in a moment
            return
        await self.accept()
        if positions is None:
            await self._error("after: give partition:offset pairs, e.g. after=0:41,3:17")
            positions = {}
        self.rechecks = asyncio.create_task(self._recheck_periodically())
        if "after" in query:
            await self._catch_up(positions)
        await self._release_held()

    async def disconnect(self, code):
        if getattr(self, "rechecks", None) is not None:
            self.rechecks.cancel()
        if hasattr(self, "user_id"):
            await live.hub().leave(self.user_id, self)

    async def _recheck_periodically(self) -> None:
        while True:
            await asyncio.sleep(access.RECHECK_S)  # the period of a check, not a wait for an effect
            await self.auth_check({"type": access.AUTH_CHECK})

    async def auth_check(self, message: dict) -> None:
        ended = message.get("endedSession")
        if (ended and self.credential == ("session", ended)) or not await access.credential_holds(
                self.credential, self.user_id):
            logger.info("user %s's socket closed: its %s no longer holds", self.user_id, self.credential[0])
            await self.close(code=UNAUTHENTICATED)

    async def access_changed(self, message: dict) -> None:
        await self.send(text_data='{"type": "reload"}')

    async def _catch_up(self, positions: dict[int, int]) -> None:
        started = time.monotonic()
        complete = await selectors.wait_for_projection()
        missed, self.reached = await selectors.events_after(user_id=self.user_id, positions=positions)
        if len(missed) > selectors.MAX_CATCHUP_EVENTS:
            missed, complete = missed[: selectors.MAX_CATCHUP_EVENTS], False
        for envelope, partition, offset in missed:
            await self.send(text_data=event_frame(envelope, partition, offset))
            positions[partition] = max(positions.get(partition, -1), offset)
        if not complete:
            # What is not sent is not vouched for: live frames are not deduplicated against it.
            self.reached = dict(positions)
        await self.send(text_data=json.dumps(
            {"type": "ready", "complete": complete, "positions": {str(p): o for p, o in positions.items()}}))
        logger.info("user %s caught up %d events in %.0f ms (complete=%s)", self.user_id, len(missed),
                    (time.monotonic() - started) * 1000, complete)

    async def receive(self, text_data=None, bytes_data=None):
        if not hasattr(self, "user_id"):
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > MAX_FRAME_BYTES:
            await self.close(code=TOO_BIG)
            return
        try:
            frame = json.loads(text_data) if text_data is not None else None
        except json.JSONDecodeError:
            frame = None
        if not isinstance(frame, dict):
            await self._error("frames are JSON objects with a type")
        elif frame.get("type") == "ping":
            await self.send(text_data='{"type": "pong"}')
        elif frame.get("type") == "catchup":
            await self._todo_catch_up(frame)
        else:
            await self._error(f"unknown frame type {str(frame.get('type'))[:40]!r}")

    async def _todo_catch_up(self, frame: dict) -> None:
        after, before = frame.get("afterVersion"), frame.get("beforeVersion")
        try:
            todo_id = str(uuid.UUID(str(frame.get("todoId"))))
        except ValueError:
            return await self._error("catchup: todoId must be a UUID")
        if not (isinstance(after, int) and after >= 0 and (before is None or (isinstance(before, int) and before > after))):
            return await self._error("catchup: afterVersion must be an integer >= 0, beforeVersion a larger one")
        # Authorization first: waiting for versions of a todo the user may not see would tell,
        # by its delay, whether that todo exists.
        if not await selectors.may_see(user_id=self.user_id, todo_id=todo_id):
            return await self._error(f"catchup: todo {todo_id} not found")
        if before is not None:  # the missing versions exist; give the projection a moment to apply them
            await selectors.wait_for_todo(todo_id, before - 1)
        events = await selectors.todo_events_between(todo_id=todo_id, after=after, before=before)
        for envelope, partition, offset in events:
            await self.send(text_data=event_frame(envelope, partition, offset))

    async def _error(self, message: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "error": message}))

    # --- from the live stream (polystack.live) ----------------------------------------------
    async def live_message(self, message: dict) -> None:
        kind = message.get("type")
        if kind in (access.AUTH_CHECK, access.ACCESS_CHANGED):
            handler = self.auth_check if kind == access.AUTH_CHECK else self.access_changed
            check = asyncio.create_task(handler(message))  # a database read: not on the hub's one reader
            self.checks.add(check)  # held, or the loop may collect it half done
            check.add_done_callback(self.checks.discard)
        elif self.held is not None:
            if len(self.held) >= MAX_HELD:
                logger.warning("user %s's socket fell %d live messages behind while catching up: told to reconnect",
                               self.user_id, MAX_HELD)
                self.held = []
                await self.close(code=RESYNC)
                return
            self.held.append(message)
        else:
            await self._push(message)

    async def stream_broke(self) -> None:
        await self.close(code=RESYNC)

    async def _release_held(self) -> None:
        while self.held:
            held, self.held = self.held, []
            for message in held:
                await self._push(message)
        self.held = None  # no await since the list was seen empty: nothing slips past

    async def _push(self, message: dict) -> None:
        frame = message.get("frame")
        if not isinstance(frame, str):
            return  # not a message of ours (anyone who reaches Redis can publish)
        if message.get("type") == TODO_EVENT:
            offset, partition = message.get("offset"), message.get("partition")
            if isinstance(offset, int) and offset <= self.reached.get(partition, -1):
                return  # already sent by the catch-up
        await self.send(text_data=frame)
