"""Sync writes: devices (register, remove, connected, acknowledged), and what the sink stores."""
import logging
import uuid

import orjson
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.sync.models import Device, SyncRecord as RecordRow, SyncTodo, SyncUser
from apps.sync.records import SyncRecord
from apps.todos.models import Team, TodoState
from polystack import live
from polystack.sockets import ACCESS_CHANGED

logger = logging.getLogger("apps.sync")

# A live message of the sink: {partition, offset, prev, syncFrame}. Not "frame": the page's
# socket (apps.realtime) sends on every live message with a frame.
SYNC_RECORD = "sync.record"
DEVICE_REMOVED = "sync.device-removed"  # a live message: {deviceId}


class DeviceError(Exception):
    """Base of the errors a device command can end with."""


class DeviceLimitError(DeviceError):
    pass


def device_register(*, user: AbstractBaseUser, name: str, platform: str) -> Device:
    with transaction.atomic():
        # One registration of the user's at a time: the cap holds under concurrent requests.
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))  # not type(user): a lazy object
        if Device.objects.filter(user=user).count() >= Device.MAX_PER_USER:
            raise DeviceLimitError(f"at most {Device.MAX_PER_USER} devices: remove one first")
        return Device.objects.create(user=user, name=name, platform=platform)


def device_remove(*, user: AbstractBaseUser, device_id: uuid.UUID) -> bool:
    """Remove one of the user's devices; its open sockets close. False: no such device of theirs."""
    with transaction.atomic():
        removed, _ = Device.objects.filter(user=user, id=device_id).delete()
        if removed:
            live.tell_after_commit(user.pk, {"type": DEVICE_REMOVED, "deviceId": str(device_id)})
    return bool(removed)


def device_change(*, device: Device, name: str | None = None, filters: dict | None = None) -> Device:
    """Rename a device, or change what it receives. New filters take effect at its next connect,
    which takes a snapshot: what it holds was chosen by the old ones."""
    if name is not None:
        device.name = name
    if filters is not None and filters != device.filters:
        device.filters = filters
        device.epoch = -1  # what it holds no longer continues: a snapshot next
    device.save(update_fields=["name", "filters", "epoch"])
    return device


def device_connected(*, user_id: int, device_id: uuid.UUID) -> Device | None:
    """A socket of the user's device said hello; None when it is no device of theirs."""
    now = timezone.now()
    if not Device.objects.filter(id=device_id, user_id=user_id).update(connections=F("connections") + 1,
                                                                       last_seen_at=now):
        return None
    return Device.objects.filter(id=device_id).first()


def device_disconnected(*, device_id: uuid.UUID) -> None:
    Device.objects.filter(id=device_id).update(connections=Greatest(F("connections") - 1, 0),
                                               last_seen_at=timezone.now())


def device_seen(*, device_id: uuid.UUID) -> bool:
    """A socket of the device is still open; False when the device is gone (removed)."""
    return bool(Device.objects.filter(id=device_id).update(last_seen_at=timezone.now()))


def device_acknowledge(*, device_id: uuid.UUID, partition: int | None, offset: int) -> None:
    """The device holds everything of its user's stream up to `offset`."""
    Device.objects.filter(id=device_id).update(acked_partition=partition, acked_offset=offset,
                                               last_seen_at=timezone.now())


def device_last_mutation(*, device_id: uuid.UUID) -> int:
    """The id of the device's last mutation applied (0: none)."""
    return Device.objects.filter(id=device_id).values_list("last_mutation_id", flat=True).first() or 0


def device_reset(*, device_id: uuid.UUID, partition: int | None, epoch: int) -> None:
    """The device was sent a snapshot of its user's stream at this partition and epoch."""
    Device.objects.filter(id=device_id).update(acked_partition=partition, epoch=epoch)


def user_access_narrowed(*, user_id: int) -> None:
    """What the user may see shrank without an event (they left a team): each of their devices
    takes a snapshot at its next connect (online ones are told by apps.realtime.access)."""
    SyncUser.objects.filter(user_id=user_id).update(epoch=F("epoch") + 1)


# Of the teams' todos (%s: user, teams), those whose latest version the user's copy lacks: ones
# they do not hold and that still exist, and ones they hold at an older version (also deleted).
_BEHIND = (
    f"SELECT s.id FROM {TodoState._meta.db_table} s LEFT JOIN {SyncTodo._meta.db_table} t "
    "ON t.user_id = %s AND t.todo_id = s.id WHERE s.team_id = ANY(%s::uuid[]) "
    "AND (t.todo_id IS NULL AND NOT s.deleted OR t.version < s.version)"
)
# Each todo's newest row in anyone's stream becomes the user's (%s: user, todos). At one
# version every recipient has the same todo; one may not see it (taken from them), so a
# visible row is preferred; none visible at the newest version means deleted.
_COPY_TEAM_TODOS = (
    f"INSERT INTO {SyncTodo._meta.db_table} AS t (user_id, todo_id, version, visible, todo) "
    "SELECT %s, todo_id, version, visible, CASE WHEN visible THEN todo END FROM ("
    f"  SELECT DISTINCT ON (todo_id) todo_id, version, visible, todo FROM {SyncTodo._meta.db_table} "
    "   WHERE todo_id = ANY(%s::uuid[]) ORDER BY todo_id, version DESC, visible DESC) latest "
    "ON CONFLICT (user_id, todo_id) DO UPDATE SET version = EXCLUDED.version, visible = EXCLUDED.visible, "
    "todo = EXCLUDED.todo WHERE t.version < EXCLUDED.version"
)


def user_access_widened(*, user_id: int, team_ids: list) -> int:
    """The user joined teams: their todos' events from before never named the user, so no
    record of them is in the user's stream. Each todo's newest row in another member's stream
    becomes the user's, their stream's epoch goes up, and each of their devices takes a
    snapshot at its next connect (online ones are told at once).

    A todo whose newest events were still on their way (committed, not yet through the
    coordinator and the sink) is copied at an older version, or not at all. Answers how many
    todos the user's copy still lacks: the caller runs this again (apps.sync.tasks
    .team_todos_catch_up) until none, once the sink has stored their newest versions. Running
    it again copies only what is newer, and nothing of a team the user has left since."""
    teams = [str(team) for team in Team.objects.filter(id__in=team_ids, members=user_id).values_list("id", flat=True)]
    with connection.cursor() as cursor:
        cursor.execute(_BEHIND, [user_id, teams])
        behind = [todo_id for (todo_id,) in cursor.fetchall()]
        if not behind:
            return 0
        cursor.execute(_COPY_TEAM_TODOS, [user_id, behind])
        changed = cursor.rowcount
        if changed:
            SyncUser.objects.filter(user_id=user_id).update(epoch=F("epoch") + 1)
            live.tell_after_commit(user_id, {"type": ACCESS_CHANGED})
        cursor.execute(_BEHIND, [user_id, teams])
        return len(cursor.fetchall())


# --- the sink --------------------------------------------------------------------------------
_INSERT_RECORDS = (
    f"INSERT INTO {RecordRow._meta.db_table} (partition, \"offset\", user_id, todo_id, event_id, version, record, "
    "created_at) SELECT *, now() FROM unnest(%s::int[], %s::bigint[], %s::bigint[], %s::uuid[], %s::uuid[], "
    "%s::int[], %s::text[]) ON CONFLICT (partition, \"offset\") DO NOTHING RETURNING partition, \"offset\""
)
_UPSERT_TODOS = (
    f"INSERT INTO {SyncTodo._meta.db_table} AS t (user_id, todo_id, version, visible, todo) "
    "SELECT * FROM unnest(%s::bigint[], %s::uuid[], %s::int[], %s::bool[], %s::jsonb[]) "
    "ON CONFLICT (user_id, todo_id) DO UPDATE SET version = EXCLUDED.version, visible = EXCLUDED.visible, "
    "todo = EXCLUDED.todo WHERE t.version < EXCLUDED.version"
)
_HEADS = (f"SELECT user_id, partition, \"offset\" FROM {SyncUser._meta.db_table} WHERE user_id = ANY(%s) "
          "ORDER BY user_id FOR UPDATE")
_UPSERT_USERS = (
    f"INSERT INTO {SyncUser._meta.db_table} AS u (user_id, partition, \"offset\", pruned_through, epoch) "
    "SELECT *, -1, 0 FROM unnest(%s::bigint[], %s::int[], %s::bigint[]) "
    "ON CONFLICT (user_id) DO UPDATE SET partition = EXCLUDED.partition, "
    "\"offset\" = CASE WHEN u.partition = EXCLUDED.partition THEN GREATEST(u.\"offset\", EXCLUDED.\"offset\") "
    "ELSE EXCLUDED.\"offset\" END"
)


def records_store(*, records: list[SyncRecord]) -> list[SyncRecord]:
    """Store a batch of records, each once (by its position): the records, each user's todos as
    of their newest record, and where each user's stream stands, in one transaction; then push
    the new ones to their users' devices. Returns the records that were new."""
    if not records:
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INSERT_RECORDS, [
            [r.partition for r in records], [r.offset for r in records], [r.user_id for r in records],
            [r.todo_id for r in records], [r.event_id for r in records], [r.version for r in records],
            [r.text for r in records]])
        inserted = set(cursor.fetchall())
        new = [r for r in records if (r.partition, r.offset) in inserted]
        if not new:
            return []
        newest: dict[tuple[int, uuid.UUID], SyncRecord] = {}  # (user, todo) -> its newest record
        for record in new:
            key = (record.user_id, record.todo_id)
            if key not in newest or newest[key].version < record.version:
                newest[key] = record
        todos = list(newest.values())
        cursor.execute(_UPSERT_TODOS, [[r.user_id for r in todos], [r.todo_id for r in todos],
                                       [r.version for r in todos], [r.visible for r in todos],
                                       [None if r.todo is None else orjson.dumps(r.todo).decode() for r in todos]])
        users = sorted({r.user_id for r in new})  # locked in user order (ORDER BY): two sinks never deadlock
        cursor.execute(_HEADS, [users])
        heads = {user: (partition, offset) for user, partition, offset in cursor.fetchall()}
        pushes, last = [], {}
        for record in new:
            partition, offset = last.get(record.user_id) or heads.get(record.user_id, (record.partition, -1))
            prev = offset if partition == record.partition else -1
            pushes.append((record.user_id, {"type": SYNC_RECORD, "partition": record.partition,
                                            "offset": record.offset, "prev": prev,
                                            "syncFrame": record_frame(record.offset, record.text)}))
            last[record.user_id] = (record.partition, record.offset)
        cursor.execute(_UPSERT_USERS, [list(last), [p for p, _ in last.values()], [o for _, o in last.values()]])
    _push(pushes)
    return new


_PRUNE = (
    f"WITH gone AS (DELETE FROM {RecordRow._meta.db_table} WHERE id IN ("
    f"SELECT id FROM {RecordRow._meta.db_table} WHERE created_at < %s ORDER BY id LIMIT %s) "
    "RETURNING user_id, partition, \"offset\"), "
    "last AS (SELECT user_id, partition, max(\"offset\") AS through FROM gone GROUP BY user_id, partition), "
    f"moved AS (UPDATE {SyncUser._meta.db_table} u SET pruned_through = GREATEST(u.pruned_through, last.through) "
    "FROM last WHERE u.user_id = last.user_id AND u.partition = last.partition RETURNING 1) "
    "SELECT count(*) FROM gone"
)


def records_prune(*, older_than, batch: int = 10_000) -> int:
    """Delete the records stored before `older_than`, `batch` at a time, each user's
    `pruned_through` raised in the same statement: a device whose position is older gets a
    snapshot, never a gap. Returns how many went."""
    pruned = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_PRUNE, [older_than, batch])
            gone = cursor.fetchone()[0]
        pruned += gone
        if gone < batch:
            return pruned


def _push(pushes: list[tuple[int, dict]]) -> None:
    try:
        live.publish(pushes)
    except Exception as exc:  # noqa: BLE001 - stored: devices read them back (the next push names its prev)
        logger.warning("could not push %d sync records live: %s", len(pushes), exc)


def record_frame(offset: int, text: str) -> str:
    """The frame that sends a device one record (its JSON text, as stored)."""
    return f'{{"type": "record", "offset": {offset}, "record": {text}}}'
