"""Reads of the todo projection, always through what the user may see."""
import time
import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from apps.projections.models import TodoEvent, TodoView
from apps.projections.waiting import watcher


def _visible(user: AbstractBaseUser) -> Q:
    """A user sees the todos they own and those assigned to them; never deleted ones."""
    return (Q(user_id=user.pk) | Q(assigned_to=user.pk)) & Q(deleted_at__isnull=True)


def todo_list(
    *, user: AbstractBaseUser, completed: bool | None = None, priority: str | None = None, assigned_to: int | None = None
) -> QuerySet[TodoView]:
    todos = TodoView.objects.filter(_visible(user))
    if completed is not None:
        todos = todos.filter(completed=completed)
    if priority is not None:
        todos = todos.filter(priority=priority)
    if assigned_to is not None:
        todos = todos.filter(assigned_to=assigned_to)
    return todos.order_by("-created_at", "id")


def todo_get(*, user: AbstractBaseUser, todo_id: uuid.UUID) -> TodoView | None:
    return TodoView.objects.filter(_visible(user), id=todo_id).first()


def todo_events(*, user: AbstractBaseUser, todo_id: uuid.UUID) -> list[dict] | None:
    """The todo's envelopes in aggregateVersion order, or None if the user may not see it."""
    if todo_get(user=user, todo_id=todo_id) is None:
        return None
    return list(TodoEvent.objects.filter(todo_id=todo_id).order_by("aggregate_version").values_list("envelope", flat=True))


def todo_wait_for_version(*, todo_id: uuid.UUID, version: int, timeout_s: float) -> TodoView | None:
    """Read-your-writes: the projected todo once it reached `version`, or None after the bound.
    Woken by the projection's NOTIFY after each batch rather than polling (see waiting.py)."""
    deadline = time.monotonic() + timeout_s
    while True:
        generation = watcher.generation
        todo = TodoView.objects.filter(id=todo_id, version__gte=version).first()
        remaining = deadline - time.monotonic()
        if todo is not None or remaining <= 0:
            return todo
        watcher.wait_for(str(todo_id), beyond=generation, timeout=remaining)
