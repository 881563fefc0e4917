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

Frames from the client over 4 KiB (polystack.sockets.MAX_FRAME_BYTES) close the socket (4413). When the live
stream of the web process broke (Redis away: pushes were lost), the socket closes with 4503:
reconnect with your positions and catch up (polystack.live, the Hub). A socket whose
session or token no longer holds (logout, token deleted, user deactivated, password changed)
closes with 4401 (apps.realtime.access).
"""
import json
import logging
import re
import time
import uuid

from apps.realtime import selectors
from polystack.sockets import UserSocket

logger = logging.getLogger("apps.realtime")

TODO_EVENT = "todo.event"  # a live message of the realtime consumer: {frame, partition, offset}
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


class TodoSocket(UserSocket):
    """Live todo events and notifications, after catching up from `after=` (see the module's
    docstring); sign-in, throttling, frames and credential checks are UserSocket's."""

    metrics_name = "todos"

    def before_join(self) -> None:
        self.reached: dict[int, int] = {}  # live frames at or below these offsets were caught up

    async def opened(self) -> None:
        positions = parse_positions(self.query.get("after", ""))
        if positions is None:
            await self.error("after: give partition:offset pairs, e.g. after=0:41,3:17")
            positions = {}
        if "after" in self.query:
            await self._catch_up(positions)
        await self.release_held(self._push)

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

    async def on_frame(self, frame: dict) -> None:
        if frame.get("type") == "catchup":
            await self._todo_catch_up(frame)
        else:
            await super().on_frame(frame)

    async def _todo_catch_up(self, frame: dict) -> None:
        after, before = frame.get("afterVersion"), frame.get("beforeVersion")
        try:
            todo_id = str(uuid.UUID(str(frame.get("todoId"))))
        except ValueError:
            return await self.error("catchup: todoId must be a UUID")
        if not (isinstance(after, int) and after >= 0 and (before is None or (isinstance(before, int) and before > after))):
            return await self.error("catchup: afterVersion must be an integer >= 0, beforeVersion a larger one")
        # Authorization first: waiting for versions of a todo the user may not see would tell,
        # by its delay, whether that todo exists.
        if not await selectors.may_see(user_id=self.user_id, todo_id=todo_id):
            return await self.error(f"catchup: todo {todo_id} not found")
        if before is not None:  # the missing versions exist; give the projection a moment to apply them
            await selectors.wait_for_todo(todo_id, before - 1)
        events = await selectors.todo_events_between(todo_id=todo_id, after=after, before=before)
        for envelope, partition, offset in events:
            await self.send(text_data=event_frame(envelope, partition, offset))

    # --- from the live stream (polystack.live) ----------------------------------------------
    async def on_live(self, message: dict) -> None:
        if not await self.hold(message):
            await self._push(message)

    async def _push(self, message: dict) -> None:
        frame = message.get("frame")
        if not isinstance(frame, str):
            return  # not a message of ours (anyone who reaches Redis can publish)
        if message.get("type") == TODO_EVENT:
            offset, partition = message.get("offset"), message.get("partition")
            if isinstance(offset, int) and offset <= self.reached.get(partition, -1):
                return  # already sent by the catch-up
        await self.send(text_data=frame)
