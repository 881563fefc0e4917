"""Reads of the todo projection, always through what the user may see."""
import time
import uuid
from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from apps.projections.models import ProjectionOffset, TodoEvent, TodoView
from apps.projections.services import apply_event
from apps.projections.waiting import watcher
from apps.todos.audience import may_see_q as _may_see_q
from polystack.streaming.topics import TODO_EVENTS, resolve


MAX_CATCHUP_TODOS = 10_000


def may_see_q(user_id: int) -> Q:
    """The read rows of the todos a user may see (apps.todos.audience)."""
    return _may_see_q(user_id, owner="user_id", assignee="assigned_to", team="team_id")


def _visible(user: AbstractBaseUser) -> Q:
    """What the API lists: the todos the user may see, never deleted ones."""
    return may_see_q(user.pk) & Q(deleted_at__isnull=True)


def projected_positions() -> dict[int, int]:
    """Where the projection stands on todo-events: the last offset applied, per partition."""
    return {partition: next_offset - 1 for partition, next_offset in
            ProjectionOffset.objects.filter(topic=resolve(TODO_EVENTS)).values_list("partition", "next_offset")}


def events_after(
    *, user_id: int, positions: dict[int, int], partitions: Iterable[int], limit: int
) -> list[tuple[dict, int, int]]:
    """Catch-up for a live client: the envelopes of todos the user may see (deleted ones
    too, so that the client learns of the deletion) on `partitions` at Kafka positions after
    `positions` ({partition: last offset seen}; a partition not named is read from its
    start), in partition and offset order, at most `limit`, as (envelope, partition, offset).

    Driven by the user's todos (their ids, then the history's (todo, version) index), not by
    position: a user with one todo reconnecting with no positions reads that todo's events, not
    a scan of everybody's history."""
    todos = list(TodoView.objects.filter(may_see_q(user_id)).values_list("id", flat=True)[:MAX_CATCHUP_TODOS + 1])
    if len(todos) > MAX_CATCHUP_TODOS:  # so many that a list is no help: let the planner choose
        todos = TodoView.objects.filter(may_see_q(user_id)).values("id")
    after = Q()
    for partition in partitions:
        after |= Q(partition=partition, offset__gt=positions.get(partition, -1))
    if not after:
        return []
    return list(TodoEvent.objects.filter(after, todo_id__in=todos).order_by("partition", "offset")
                .values_list("envelope", "partition", "offset")[:limit])


def todo_list(
    *,
    user: AbstractBaseUser,
    completed: bool | None = None,
    priority: str | None = None,
    assigned_to: int | None = None,
    team_id: uuid.UUID | None = None,
    deleted: bool = False,
) -> QuerySet[TodoView]:
    """The todos the user may see; `deleted`: the deleted ones instead (to look back at them)."""
    todos = TodoView.objects.filter(may_see_q(user.pk) & Q(deleted_at__isnull=not deleted))
    if completed is not None:
        todos = todos.filter(completed=completed)
    if priority is not None:
        todos = todos.filter(priority=priority)
    if assigned_to is not None:
        todos = todos.filter(assigned_to=assigned_to)
    if team_id is not None:
        todos = todos.filter(team_id=team_id)
    return todos.order_by("-created_at", "id")


def todo_get(*, user: AbstractBaseUser, todo_id: uuid.UUID) -> TodoView | None:
    return TodoView.objects.filter(_visible(user), id=todo_id).first()


# The read row's instants, which events carry as ISO text.
INSTANTS = ("completed_at", "due_date", "created_at", "updated_at", "deleted_at")


def _as_todo(row: dict) -> TodoView:
    """A folded row as the (unsaved) read model, its instants parsed as a read of the table gives them."""
    return TodoView(**{**row, **{k: datetime.fromisoformat(row[k]) for k in INSTANTS if row[k] is not None}})


def todo_history(*, user: AbstractBaseUser, todo_id: uuid.UUID, version: int | None = None,
                 as_of: datetime | None = None) -> list[tuple[dict, TodoView]] | None:
    """Time travel: the todo's events in order, each with the todo as it was right after it,
    folded with the projection's own fold (services.apply_event), up to `version` or to the
    events that occurred by `as_of` (all when neither). None when the user may not see the
    todo — deleted ones included, for those who could see them."""
    if not TodoView.objects.filter(may_see_q(user.pk), id=todo_id).exists():
        return None
    envelopes = TodoEvent.objects.filter(todo_id=todo_id).order_by("aggregate_version")
    if version is not None:
        envelopes = envelopes.filter(aggregate_version__lte=version)
    if as_of is not None:
        envelopes = envelopes.filter(occurred_at__lte=as_of)
    history, row = [], None
    for envelope in envelopes.values_list("envelope", flat=True):
        row = apply_event(row, envelope)
        history.append((envelope, _as_todo(row)))
    return history


def projection_generation() -> int:
    """How far the projection's notifications have come: read it before a command and pass it
    to `todo_wait_for_version`, which then skips a read that could not find the command's result."""
    return watcher.generation


def todo_wait_for_version(
    *, todo_id: uuid.UUID, version: int, timeout_s: float, since: int | None = None
) -> TodoView | None:
    """Read-your-writes: the projected todo once it reached `version`, or None after the bound.
    Woken by the projection's NOTIFY after each batch rather than polling (see waiting.py).

    With `since` (a `projection_generation()` read before the command), it first waits for a
    batch newer than that which names the todo: no batch before it can hold the command's events.
    """
    deadline = time.monotonic() + timeout_s
    generation = since
    while True:
        if generation is not None:
            watcher.wait_for(str(todo_id), beyond=generation, timeout=max(deadline - time.monotonic(), 0))
        generation = watcher.generation
        todo = next(iter(TodoView.objects.filter(id=todo_id, version__gte=version)), None)  # no ORDER BY
        if todo is not None or time.monotonic() >= deadline:
            return todo
