"""Command decisions (apps.todos.services.authorize) and how their errors answer over HTTP."""
import uuid

import pytest
from rest_framework import status

from apps.todos import services
from apps.todos.models import TodoState
from apps.web.api.todos import error_status

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
