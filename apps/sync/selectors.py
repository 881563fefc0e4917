"""Sync reads: a user's devices, where their stream stands, the records a device missed, and
the snapshot a reset sends."""
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from apps.sync.models import Conflict, Device, SyncRecord, SyncTodo, SyncUser
from apps.todos.audience import may_see_q
from apps.todos.models import Team, TodoState

PAGE = 1000  # records per read of a catch-up
ONLINE_WITHIN = timedelta(seconds=90)  # a socket refreshes its device's last_seen_at more often


@dataclass(frozen=True)
class StreamHead:
    """Where a user's stream stands in the sink."""

    partition: int
    offset: int  # the user's last record materialised
    pruned_through: int  # the user's last record no longer held (-1: none)
    epoch: int


@dataclass(frozen=True)
class Snapshot:
    head: StreamHead | None
    todos: list[dict]


def device_list(*, user_id: int) -> list[Device]:
    return list(Device.objects.filter(user_id=user_id))


def conflicts_of(*, user_id: int, open_only: bool = True, todo_id: uuid.UUID | None = None) -> list[Conflict]:
    """The conflicts of the todos the user may see now (open ones: not resolved yet)."""
    visible = TodoState.objects.filter(may_see_q(user_id, owner="owner", assignee="assigned_to", team="team"))
    if todo_id is not None:
        visible = visible.filter(id=todo_id)
    conflicts = Conflict.objects.filter(todo_id__in=visible.values("id"))
    return list(conflicts.filter(resolved_at__isnull=True) if open_only else conflicts[:1000])


def conflict_get(*, user_id: int, conflict_id: uuid.UUID) -> Conflict | None:
    conflict = Conflict.objects.filter(id=conflict_id).first()
    if conflict is None or not conflicts_of(user_id=user_id, open_only=False, todo_id=conflict.todo_id):
        return None
    return conflict


def device_get(*, user_id: int, device_id: uuid.UUID) -> Device | None:
    return Device.objects.filter(user_id=user_id, id=device_id).first()


def is_online(device: Device) -> bool:
    """Connected now: a socket open, seen lately (a web process that died leaves its count)."""
    return device.connections > 0 and device.last_seen_at is not None and (
        timezone.now() - device.last_seen_at < ONLINE_WITHIN)


def stream_head(*, user_id: int) -> StreamHead | None:
    row = SyncUser.objects.filter(user_id=user_id).values_list("partition", "offset", "pruned_through",
                                                               "epoch").first()
    return StreamHead(*row) if row else None


def records_after(*, user_id: int, partition: int, offset: int, limit: int = PAGE) -> list[tuple[int, str]]:
    """The user's records after `offset` in `partition`, oldest first: (offset, record text)."""
    return list(SyncRecord.objects.filter(user_id=user_id, partition=partition, offset__gt=offset)
                .order_by("offset").values_list("offset", "record")[:limit])


def snapshot(*, user_id: int) -> Snapshot:
    """The user's todos as of their stream's head, both read in one snapshot of the database,
    less what they may no longer see (a team they left: no event told the stream)."""
    with transaction.atomic():
        with connection.cursor() as cursor:  # both reads see one state of the database
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        head = stream_head(user_id=user_id)
        todos = list(SyncTodo.objects.filter(user_id=user_id, visible=True).order_by("todo_id")
                     .values_list("todo", flat=True))
    teams = {str(team) for team in Team.members.through.objects.filter(user_id=user_id).values_list("team_id",
                                                                                                    flat=True)}
    return Snapshot(head, [todo for todo in todos if may_see(user_id=user_id, teams=teams, todo=todo)])


def may_see(*, user_id: int, teams: set[str], todo: dict) -> bool:
    """Whether a user sees a todo now: theirs, assigned to them, or of a team of theirs."""
    me = str(user_id)
    return todo["userId"] == me or todo["assignedTo"] == me or (todo["teamId"] is not None and todo["teamId"] in teams)


def wants(filters: dict, *, user_id: int, todo: dict | None) -> bool:
    """Whether a device with these filters receives a todo: `{"own": true}` only the user's own
    and those assigned to them; `{"teams": [...]}` besides those, only these teams'. A deleted
    todo (None) always goes: the device may hold it."""
    if todo is None or not filters:
        return True
    me = str(user_id)
    if todo["userId"] == me or todo["assignedTo"] == me:
        return True
    if filters.get("own"):
        return False
    if "teams" in filters:
        return todo["teamId"] in filters["teams"]
    return True
