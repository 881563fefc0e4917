"""What every WebSocket of ours shares: a signed-in user, connects throttled, a credential that
must keep holding, bounded JSON frames, and the user's live stream (polystack.live).

A socket class (apps.realtime's TodoSocket, apps.sync's SyncSocket) subclasses `UserSocket`:

    before_join()          set up what live messages need before any can arrive (they are held,
                           `self.held`, until the subclass calls release_held after its catch-up)
    async opened()         accepted and joined: send what the client missed (self.query has the
                           query string's parameters)
    async on_frame(frame)  a client frame, a JSON object with a type ("ping" is answered here)
    async on_live(message) a live message of the user that is not about their access
    async access_changed(message)  what the user may see changed (they left a team)
    async closed()         the socket is gone

Connect with the session cookie, or `?token=<DRF token>` (apps.realtime.auth puts its user in
the scope); none, or a bad one, closes the socket with 4401. After a logout, a deleted token or
a change of the user (apps.realtime.access tells the user's sockets `auth.check`), and every
RECHECK_S, each socket checks that what it signed in with still holds, and closes with 4401 when
it does not.
"""
import asyncio
import functools
import json
import logging
from importlib import import_module
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.auth import get_user
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections, connections

from polystack import live, metrics, throttle

logger = logging.getLogger("polystack.sockets")

UNAUTHENTICATED = 4401
TOO_MANY = 4429  # like HTTP 429: connects per user over WS_CONNECT_RATE; wait and come back
TOO_BIG = 4413  # like HTTP 413; daphne lets applications close with 1000 or 3000-4999 only
RESYNC = 4503  # like HTTP 503: the live stream broke; reconnect and catch up
MAX_FRAME_BYTES = 4096
RECHECK_S = 300.0
MAX_HELD = 5000  # live messages held while a socket catches up; past it, it reconnects (4503)
AUTH_CHECK = "auth.check"  # live message: re-check your credential ({"endedSession": key} after a logout)
ACCESS_CHANGED = "access.changed"  # live message: what the user may see changed


def off_thread(func):
    """Run a function that uses the database on the event loop's thread pool, with a pooled
    connection given back when it returns: Channels' database_sync_to_async runs every call of
    a process on one thread, so one slow query queued every socket of the process behind it."""

    @functools.wraps(func)
    async def call(*args, **kwargs):
        def run():
            close_old_connections()
            try:
                return func(*args, **kwargs)
            finally:
                connections.close_all()  # back to the pool: a pool thread holds no connection

        return await sync_to_async(run, thread_sensitive=False)()

    return call


@off_thread
def _token_holds(key: str, user_id: int) -> bool:
    from rest_framework.authtoken.models import Token

    return Token.objects.filter(key=key, user_id=user_id, user__is_active=True).exists()


async def credential_holds(credential: tuple[str, str | None], user_id: int) -> bool:
    """Whether the token, or the session, a socket was opened with still signs in `user_id`."""
    kind, key = credential
    if kind == "token":
        return await _token_holds(key, user_id)
    if not key:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)  # read afresh
    user = await get_user({"session": session})
    return user.is_authenticated and user.pk == user_id


class UserSocket(AsyncWebsocketConsumer):
    """A signed-in user's socket (see the module's docstring)."""

    max_frame_bytes = MAX_FRAME_BYTES
    metrics_name = "socket"  # the `socket` label of its metrics (polystack.metrics)
    frames_sent = None  # its counter, once accepted

    # --- hooks ------------------------------------------------------------------------------
    def before_join(self) -> None:
        pass

    async def opened(self) -> None:
        pass

    async def on_frame(self, frame: dict) -> None:
        await self.error(f"unknown frame type {str(frame.get('type'))[:40]!r}")

    async def on_live(self, message: dict) -> None:
        pass

    async def access_changed(self, message: dict) -> None:
        pass

    async def closed(self) -> None:
        pass

    # --- the plumbing -------------------------------------------------------------------------
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
        # Blank values count (`after=` asks for everything).
        self.query = {name: values[0] for name, values in
                      parse_qs(self.scope.get("query_string", b"").decode("latin1"), keep_blank_values=True).items()}
        # What this socket signed in with, to re-check later (a token wins over the cookie).
        session = self.scope.get("session")
        self.credential = (("token", self.query["token"][:64]) if self.query.get("token")
                           else ("session", getattr(session, "session_key", None)))
        self.checks: set[asyncio.Task] = set()  # credential checks asked for by live messages
        self.held: list[dict] | None = []  # live messages wait here while the socket catches up (hold)
        self.before_join()
        try:
            await live.hub().join(user.pk, self)
        except live.StreamBrokenError as exc:
            logger.warning("socket of user %s refused for now: the live stream is down (%s)", user.pk, exc)
            await self.accept()
            await self.close(code=RESYNC)  # come back in a moment
            return
        await self.accept()
        self.frames_sent = metrics.WS_FRAMES.labels(self.metrics_name)
        metrics.WS_OPEN.labels(self.metrics_name).inc()
        self.rechecks = asyncio.create_task(self._recheck_periodically())
        await self.opened()

    async def send(self, text_data=None, bytes_data=None, close=False):
        if self.frames_sent is not None and not close:
            self.frames_sent.inc()
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def disconnect(self, code):
        if getattr(self, "rechecks", None) is not None:
            metrics.WS_OPEN.labels(self.metrics_name).dec()
            self.rechecks.cancel()
        if hasattr(self, "user_id"):
            await live.hub().leave(self.user_id, self)
            await self.closed()

    async def _recheck_periodically(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_S)  # the period of a check, not a wait for an effect
            await self.auth_check({"type": AUTH_CHECK})

    async def auth_check(self, message: dict) -> None:
        ended = message.get("endedSession")
        if (ended and self.credential == ("session", ended)) or not await credential_holds(
                self.credential, self.user_id):
            logger.info("user %s's socket closed: its %s no longer holds", self.user_id, self.credential[0])
            await self.close(code=UNAUTHENTICATED)

    async def receive(self, text_data=None, bytes_data=None):
        if not hasattr(self, "user_id"):
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > self.max_frame_bytes:
            await self.close(code=TOO_BIG)
            return
        try:
            frame = json.loads(text_data) if text_data is not None else None
        except (json.JSONDecodeError, RecursionError):
            frame = None
        if not isinstance(frame, dict):
            await self.error("frames are JSON objects with a type")
        elif frame.get("type") == "ping":
            await self.send(text_data='{"type": "pong"}')
        else:
            await self.on_frame(frame)

    async def error(self, message: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "error": message}))

    # --- holding live messages while the client is caught up --------------------------------
    async def hold(self, message: dict) -> bool:
        """Keep a live message for after the catch-up while one runs (`self.held` is a list):
        what the socket sends live must follow what it catches up. True when kept (or when the
        socket fell MAX_HELD behind and was told to reconnect, 4503)."""
        if self.held is None:
            return False
        if len(self.held) >= MAX_HELD:
            logger.warning("user %s's socket fell %d live messages behind while catching up: told to reconnect",
                           self.user_id, MAX_HELD)
            self.held = []
            await self.close(code=RESYNC)
            return True
        self.held.append(message)
        return True

    async def release_held(self, deliver) -> None:
        """The catch-up is done: `deliver` what was held, then stop holding."""
        while self.held:
            held, self.held = self.held, []
            for message in held:
                await deliver(message)
        self.held = None  # no await since the list was seen empty: nothing slips past

    # --- from the live stream (polystack.live) ----------------------------------------------
    async def live_message(self, message: dict) -> None:
        kind = message.get("type")
        if kind in (AUTH_CHECK, ACCESS_CHANGED):
            handler = self.auth_check if kind == AUTH_CHECK else self.access_changed
            check = asyncio.create_task(handler(message))  # a database read: not on the hub's one reader
            self.checks.add(check)  # held, or the loop may collect it half done
            check.add_done_callback(self.checks.discard)
        else:
            await self.on_live(message)

    async def stream_broke(self) -> None:
        await self.close(code=RESYNC)
