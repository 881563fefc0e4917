"""`ws://<host>/ws/sync/`: the sync protocol — a device's copy of its user's todos, kept
exactly, from one stream (device-sync-events, materialised by the sink).

Connect with `?token=<DRF token>` (a native client: no Origin needed) or the session cookie
(the page). The first frame names the device and where it stopped:

  client → server
    {"type": "hello", "deviceId": "<uuid>", "lastOffset": <int, -1 for nothing yet>}
    {"type": "ack", "offset": <int>}        everything up to here is stored on the device (stored
                                            on the server at most once a second, and at close)
    {"type": "push", "mutations": [<mutation>, ...]}    at most MAX_PUSH; see below
    {"type": "ping"}
  server → client
    {"type": "snapshot", "offset": o, "todos": [<todo>, ...], "more": bool}
    {"type": "snapshot.part", "offset": o, "todos": [...], "more": bool}   while "more" was true
        a reset: replace the whole local copy with these todos (500 a frame: the first frame
        replaces, the parts add), which are the state at offset o; then records after o
        follow. Sent to a new device (lastOffset -1), and when the device's position cannot be
        continued: older than what is still held, beyond the stream's end, in another
        partition, or from before what the user may see changed (they left a team).
    {"type": "record", "offset": o, "record": {"visible": bool, "todo": <todo>|null, "event": <envelope>, ...}}
        apply: when todo.version is newer than the local copy's, replace it; not visible (or
        todo null: deleted), remove it. Offsets only grow.
    {"type": "ready", "offset": o, "lastMutationId": n}   caught up to o; live records follow. n:
                                            the device's last mutation applied (resend those after it)
    {"type": "pushed", "lastMutationId": n, "results": [<result>, ...], "refused": "..."}
        the result of each mutation of a push, in order; "refused" (with no result for the
        rest) when the push could not go on: a gap ("gap": true; resend from n + 1), a mutation
        without an id, the server failing (push again later), or the user's devices pushing
        more than WS_PUSH_RATE mutations (none applied; "retryAfter": seconds to wait)
    {"type": "error", "error": "..."}       a bad frame; the socket stays open
    {"type": "notification", ...}           a new in-app notification of the user (the page's feed)
    {"type": "pong"}

A mutation: {"id": n, "name": "create"|"update"|"complete"|"delete", "todoId": "<uuid>",
"baseVersion": <the todo's version the device had; 0 for one it created>, "hlc": "<wall ms>:<counter>",
"args": {...}} — create: {title, description?, priority?, teamId?}; update: any of {title,
description, priority, assignedTo}. Ids count up from the device's lastMutationId + 1; each
applies exactly once (a duplicate is answered "duplicate"). A result: {"id": n, "todoId",
"status": "applied"|"duplicate"|"rejected", "version", "applied": [fields], "lost": {field:
the value kept instead}, "conflicts": [{conflictId, field, localValue, remoteValue}], "error"}.
What was applied comes back as records, like every change (apps.sync.mutations).

A todo has the REST API's shape (id, title, description, priority, completed, completedAt,
assignedTo, userId, dueDate, reminderTimes, teamId, createdAt, updatedAt, version).
Closes: 4401 bad credentials, 4404 no such device of this user (or removed meanwhile), 4408
no hello within HELLO_TIMEOUT_S, 4413 a frame over 4 KiB, 4429 connecting too often, 4503 the
live stream broke (reconnect: the device resumes from its offset, nothing is lost).
"""
import asyncio
import json
import logging
import uuid

from django.conf import settings

from apps.sync import mutations, selectors, services
from apps.sync.api.serializers import MAX_MUTATION_ID
from apps.sync.models import Device
from polystack import live, throttle
from polystack.sockets import UserSocket, off_thread

logger = logging.getLogger("apps.sync")

NO_DEVICE = 4404
NO_HELLO = 4408
HELLO_TIMEOUT_S = 10.0
HEARTBEAT_S = 30.0
ACK_EVERY_S = 1.0
SNAPSHOT_PART = 500  # todos per snapshot frame
MAX_PUSH = 100  # mutations per push frame
MAX_PUSH_BYTES = 256 * 1024  # a push of long descriptions; every other frame stays small


class SyncSocket(UserSocket):
    max_frame_bytes = MAX_PUSH_BYTES
    metrics_name = "sync"

    def before_join(self) -> None:
        self.device: Device | None = None
        self.partition: int | None = None  # the user's partition of device-sync-events
        self.sent = -1  # the offset of the last record the device has (sent, or in its snapshot)
        self.reset_asked = False  # what the user may see changed while the device was being served
        self.tasks: list[asyncio.Task] = []
        self.acked = -1  # the latest offset the device acknowledged
        self.ack_writer: asyncio.Task | None = None

    async def opened(self) -> None:
        self.tasks.append(asyncio.create_task(self._hello_within()))

    async def _hello_within(self) -> None:
        await asyncio.sleep(HELLO_TIMEOUT_S)  # a deadline for the client, not a wait for an effect
        if self.device is None:
            await self.close(code=NO_HELLO)

    async def _heartbeat(self) -> None:
        while True:  # keeps the device online in the registry while its socket is open
            await asyncio.sleep(HEARTBEAT_S)
            if not await off_thread(services.device_seen)(device_id=self.device.id):
                await self.close(code=NO_DEVICE)  # removed, and the live message did not come
                return

    async def closed(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.device is not None:
            if self.ack_writer is not None and not self.ack_writer.done():
                self.ack_writer.cancel()
                await self._write_ack(after=0)  # the last ack is not lost with the socket
            await off_thread(services.device_disconnected)(device_id=self.device.id)

    async def _write_ack(self, *, after: float) -> None:
        await asyncio.sleep(after)  # acks of a busy device are coalesced, not each written
        await off_thread(services.device_acknowledge)(device_id=self.device.id, partition=self.partition,
                                                      offset=self.acked)

    async def on_frame(self, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "hello":
            await self._hello(frame)
        elif self.device is None:
            await self.error("say hello first: {\"type\": \"hello\", \"deviceId\": ..., \"lastOffset\": ...}")
        elif kind == "ack":
            offset = frame.get("offset")
            if type(offset) is not int or not -1 <= offset <= self.sent:
                return await self.error(f"ack: offset must be an integer from -1 to {self.sent}")
            self.acked = offset
            if self.ack_writer is None or self.ack_writer.done():  # at most one write per ACK_EVERY_S
                self.ack_writer = asyncio.create_task(self._write_ack(after=ACK_EVERY_S))
        elif kind == "push":
            await self._push(frame)
        else:
            await self.error(f"unknown frame type {str(kind)[:40]!r}")

    async def _push(self, frame: dict) -> None:
        batch = frame.get("mutations")
        if not isinstance(batch, list) or not 1 <= len(batch) <= MAX_PUSH:
            return await self.error(f"push: mutations must be a list of 1 to {MAX_PUSH}")
        wait = await off_thread(throttle.hit)(f"ws:push:{self.user_id}", settings.WS_PUSH_RATE, cost=len(batch))
        if wait:
            logger.warning("user %s pushes too many mutations: refused for %s s", self.user_id, wait)
            last = await off_thread(services.device_last_mutation)(device_id=self.device.id)
            return await self.send(text_data=json.dumps({
                "type": "pushed", "lastMutationId": last, "results": [], "retryAfter": wait, "gap": False,
                "refused": f"too many changes at once: they go again in {wait} s"}))
        results, refused, gap = [], None, False
        for raw in batch:
            number = raw.get("id") if isinstance(raw, dict) else None
            if type(number) is not int or not 1 <= number <= MAX_MUTATION_ID:
                refused = "a mutation without an id (an integer from 1): the rest of the push is not applied"
                break
            try:  # validation reads the database too: all of it on a thread
                result = await off_thread(mutations.mutation_receive)(
                    user=self.scope["user"], device_id=self.device.id, number=number, raw=raw)
            except mutations.MutationGapError as exc:
                refused, gap = str(exc), True
                break
            except mutations.DeviceGoneError:
                await self.close(code=NO_DEVICE)
                return
            except Exception:  # the database down, a bug: this mutation is not counted; it comes again
                logger.exception("mutation %s of device %s failed", number, self.device.id)
                refused = "the server could not apply it now: push again later"
                break
            results.append(result)
        last = await off_thread(services.device_last_mutation)(device_id=self.device.id)
        await self.send(text_data=json.dumps({"type": "pushed", "lastMutationId": last, "results": results,
                                              **({"refused": refused, "gap": gap} if refused else {})}))

    async def _hello(self, frame: dict) -> None:
        if self.device is not None:
            return await self.error("hello: already said")
        last = frame.get("lastOffset")
        try:
            device_id = uuid.UUID(str(frame.get("deviceId")))
        except ValueError:
            return await self.error("hello: deviceId must be a UUID")
        if type(last) is not int or last < -1:
            return await self.error("hello: lastOffset must be an integer, -1 for nothing yet")
        device = await off_thread(services.device_connected)(user_id=self.user_id, device_id=device_id)
        if device is None:
            await self.close(code=NO_DEVICE)
            return
        self.device = device
        self.tasks.append(asyncio.create_task(self._heartbeat()))
        await self._serve(last)

    async def _serve(self, last: int | None) -> None:
        """Bring the device up to date from `last` (None: reset it), then send what came live
        meanwhile. A snapshot when its position cannot be continued: nothing yet (-1), older
        than what is still held, beyond the stream's end, in another partition, or from before
        what the user may see changed."""
        head = await off_thread(selectors.stream_head)(user_id=self.user_id)
        device = self.device
        if (last is None or last == -1 or head is None or last > head.offset or last < head.pruned_through
                or device.acked_partition not in (None, head.partition) or device.epoch < head.epoch):
            await self._reset()
        else:
            self.partition, self.sent = head.partition, last
            await self._send_after(head.offset)
        last_mutation = await off_thread(services.device_last_mutation)(device_id=self.device.id)
        await self.send(text_data=json.dumps({"type": "ready", "offset": self.sent, "lastMutationId": last_mutation}))
        while self.reset_asked:
            self.reset_asked = False
            await self._reset()
        await self.release_held(self._live_record)
        if self.reset_asked:  # asked while the held records went out
            self.reset_asked = False
            self.held = []
            await self._serve(None)

    async def _reset(self) -> None:
        snapshot = await off_thread(selectors.snapshot)(user_id=self.user_id)
        head = snapshot.head
        self.partition = head.partition if head else None
        self.sent = head.offset if head else -1
        todos = [todo for todo in snapshot.todos if selectors.wants(self.device.filters, user_id=self.user_id, todo=todo)]
        # In frames of SNAPSHOT_PART todos: the first replaces the device's copy, the rest add to it.
        for start in range(0, max(len(todos), 1), SNAPSHOT_PART):
            part = {"type": "snapshot" if start == 0 else "snapshot.part", "offset": self.sent,
                    "todos": todos[start:start + SNAPSHOT_PART], "more": start + SNAPSHOT_PART < len(todos)}
            await self.send(text_data=json.dumps(part))
        await off_thread(services.device_reset)(device_id=self.device.id, partition=self.partition,
                                                epoch=head.epoch if head else 0)
        logger.info("device %s of user %s reset to offset %d (%d todos)", self.device.id, self.user_id, self.sent,
                    len(todos))

    async def _send_after(self, through: int) -> None:
        """Send the user's stored records after `self.sent` up to `through`, a page at a time."""
        while self.sent < through:
            page = await off_thread(selectors.records_after)(user_id=self.user_id, partition=self.partition,
                                                             offset=self.sent)
            for offset, text in page:
                if offset > through:
                    return
                await self._send_record(offset, text)
            if len(page) < selectors.PAGE:
                return

    async def _send_record(self, offset: int, text: str) -> None:
        await self._send_frame(offset, services.record_frame(offset, text))

    async def _send_frame(self, offset: int, frame: str) -> None:
        """Send a record's frame. A todo the device's filters leave out goes as not visible: the
        device may hold it from before (it was assigned to its user, and no longer is)."""
        if self.device.filters:
            decoded = json.loads(frame)
            if not selectors.wants(self.device.filters, user_id=self.user_id, todo=decoded["record"]["todo"]):
                decoded["record"]["visible"] = False
                frame = json.dumps(decoded)
        await self.send(text_data=frame)
        self.sent = offset

    # --- live ------------------------------------------------------------------------------
    async def on_live(self, message: dict) -> None:
        kind = message.get("type")
        if kind == services.DEVICE_REMOVED:
            if self.device is not None and message.get("deviceId") == str(self.device.id):
                await self.close(code=NO_DEVICE)
        elif kind == services.SYNC_RECORD and not await self.hold(message):
            await self._live_record(message)
        elif kind == live.NOTIFICATION_NEW and isinstance(message.get("frame"), str) and self.device is not None:
            await self.send(text_data=message["frame"])  # the page's feed: one socket for all it follows

    async def _live_record(self, message: dict) -> None:
        offset, prev, partition, frame = (message.get("offset"), message.get("prev"), message.get("partition"),
                                          message.get("syncFrame"))
        if not (type(offset) is int and type(prev) is int and type(partition) is int and isinstance(frame, str)):
            return  # not a message of ours (anyone who reaches Redis can publish)
        if partition != self.partition:
            if self.partition is None:  # the user's first record ever: the stream begins
                self.partition = partition
            else:
                return
        if offset <= self.sent:
            return  # sent by the catch-up
        if prev > self.sent:  # a push in between was lost (Pub/Sub keeps nothing): read it back
            await self._send_after(prev)
        await self._send_frame(offset, frame)

    async def access_changed(self, message: dict) -> None:
        """They left a team: what the device holds may show what they no longer see."""
        if self.device is None:
            return  # its hello will be served from the state after the change
        if self.held is not None:
            self.reset_asked = True  # being served: _serve resets it once more
            return
        self.held = []  # live records wait: none may go out before the snapshot
        await self._serve(None)
