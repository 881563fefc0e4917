"""Command decisions (apps.todos.services.authorize) and how their errors answer over HTTP."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework import status

from apps.todos import services
from apps.todos.models import TodoState
from apps.todos.api.errors import error_status

TODO = uuid.uuid4()


def state(**fields) -> TodoState:
    return TodoState(id=TODO, owner_id=1, assigned_to_id=2, version=3, **fields)  # never saved


def decide(actor_id: int, todo: TodoState | None, **options) -> None:
    services.authorize(actor_id=actor_id, todo_id=TODO, state=todo, members={1, 4}, **options)


def test_the_owner_may_do_anything():
    decide(1, state())


@pytest.mark.parametrize(("actor", "options", "error"), [
    (9, {}, services.TodoNotFoundError),  # not theirs to see: as if there were none
    (2, {}, services.TodoForbiddenError),  # the assignee sees it, may not change it
    (4, {}, services.TodoForbiddenError),  # a team member sees it, may not change it
    (1, {"expected_version": 2}, services.VersionConflictError),
])
def test_who_may_not(actor, options, error):
    with pytest.raises(error):
        decide(actor, state(), **options)


def test_the_assignee_may_what_the_command_allows():
    decide(2, state(), assignee_may=True)
    with pytest.raises(services.TodoForbiddenError):
        decide(4, state(), assignee_may=True)


def test_nothing_changes_a_deleted_todo_and_no_todo_is_not_found():
    with pytest.raises(services.TodoConflictError):
        decide(1, state(deleted=True))
    with pytest.raises(services.TodoNotFoundError):
        decide(1, None)


def test_a_version_conflict_names_the_current_version():
    with pytest.raises(services.VersionConflictError) as caught:
        decide(1, state(), expected_version=1)
    assert caught.value.current == 3


@pytest.mark.parametrize(("error", "code"), [
    (services.TodoNotFoundError("x"), status.HTTP_404_NOT_FOUND),
    (services.TodoForbiddenError("x"), status.HTTP_403_FORBIDDEN),
    (services.TodoInvalidError("title", "x"), status.HTTP_400_BAD_REQUEST),
    (services.TodoConflictError("x"), status.HTTP_409_CONFLICT),
    (services.VersionConflictError(expected=1, current=2), status.HTTP_409_CONFLICT),
])
def test_each_error_answers_its_status(error, code):
    assert error_status(error) == code


def test_a_new_kind_of_error_answers_as_its_nearest_known_base_not_500():
    class TodoArchivedError(services.TodoConflictError):
        pass

    class TodoOddError(services.TodoError):
        pass

    assert error_status(TodoArchivedError("x")) == status.HTTP_409_CONFLICT
    assert error_status(TodoOddError("x")) == status.HTTP_400_BAD_REQUEST


NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DUE = NOW + timedelta(days=3)


def test_a_schedule_reminds_a_day_and_an_hour_before_unless_told_otherwise():
    assert services.schedule_data(DUE, None, NOW) == {
        "dueDate": "2026-03-05T10:00:00.000000Z",
        "reminderTimes": ["2026-03-04T10:00:00.000000Z", "2026-03-05T09:00:00.000000Z"],
        "scheduledAt": "2026-03-02T10:00:00.000000Z",
    }
    soon = NOW + timedelta(hours=5)  # a day before has passed already: only the hour before
    assert services.schedule_data(soon, None, NOW)["reminderTimes"] == ["2026-03-02T14:00:00.000000Z"]
    chosen = [DUE - timedelta(minutes=5), NOW + timedelta(seconds=1), DUE - timedelta(minutes=5)]
    assert services.schedule_data(DUE, chosen, NOW)["reminderTimes"] == [
        "2026-03-02T10:00:01.000000Z", "2026-03-05T09:55:00.000000Z"], "in order, each once"
    assert services.schedule_data(None, None, NOW) == {"dueDate": None, "reminderTimes": [],
                                                      "scheduledAt": "2026-03-02T10:00:00.000000Z"}


@pytest.mark.parametrize(("due", "times", "message"), [
    (None, [DUE], "without a due date"),
    (DUE, [NOW], "has passed"),
    (DUE, [DUE + timedelta(seconds=1)], "after the due date"),
    (DUE, [DUE - timedelta(minutes=n) for n in range(11)], "at most 10"),
])
def test_a_schedule_refuses_reminders_that_cannot_fire(due, times, message):
    with pytest.raises(services.TodoInvalidError, match=message) as refused:
        services.schedule_data(due, times, NOW)
    assert refused.value.field == "reminderTimes"
