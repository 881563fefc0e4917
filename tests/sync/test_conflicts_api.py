"""Conflicts and the conflict policy through the REST API: seen by whoever may see the todo,
resolved once by its owner with a value the field's rules accept, announced by events."""
import pytest
from rest_framework.test import APIClient

from apps.sync.conflicts import MANUAL
from apps.sync.models import Conflict, SyncSettings
from apps.todos import services
from apps.todos.models import OutboxEvent, Team, TodoState
from tests import helpers
from tests.sync.test_mutations import NOW, Phones


@pytest.fixture
def conflict(user_factory):
    """A title conflict on a team todo of its owner, who asked to decide conflicts."""
    owner, member = user_factory(), user_factory()
    team = Team.objects.create(name="home", owner=owner)
    team.members.add(owner, member)
    SyncSettings.objects.create(user=owner, conflict_policy=MANUAL)
    todo = services.todo_create(actor=owner, title="Paint", team_id=team.id, correlation_id="c").todo_id
    phones = Phones(owner, ["A", "B"])
    phones.push("A", "update", todo, base=1, at=NOW - 2000, title="Paint blue")
    [raised] = phones.push("B", "update", todo, base=1, at=NOW - 1000, title="Paint red")["conflicts"]
    return {"owner": owner, "member": member, "todo": todo, "id": raised["conflictId"]}


def resolve(user, conflict_id, value):
    return helpers.api_client(user).post(f"/api/conflicts/{conflict_id}/resolve/", {"value": value}, format="json")


def events_of(todo) -> list[str]:
    return [e.event_type for e in OutboxEvent.objects.filter(key__isnull=False).order_by("id")
            if f'"aggregateId": "{todo}"' in e.payload]


def test_a_conflict_is_seen_by_everyone_who_sees_its_todo_and_nobody_else(conflict, user_factory):
    stranger = user_factory()
    for user in (conflict["owner"], conflict["member"]):
        [listed] = helpers.api_client(user).get("/api/conflicts/").json()
        assert (listed["conflictId"], listed["field"], listed["localValue"], listed["remoteValue"]) == (
            conflict["id"], "title", "Paint red", "Paint blue")
        assert helpers.api_client(user).get(f"/api/conflicts/{conflict['id']}/").status_code == 200
    assert helpers.api_client(stranger).get("/api/conflicts/").json() == []
    assert helpers.api_client(stranger).get(f"/api/conflicts/{conflict['id']}/").status_code == 404
    assert resolve(stranger, conflict["id"], "mine").status_code == 404
    assert APIClient().get("/api/conflicts/").status_code == 401
    assert helpers.api_client(stranger).get("/api/conflicts/not-a-uuid/").status_code == 404


def test_only_the_owner_resolves(conflict):
    assert resolve(conflict["member"], conflict["id"], "Paint red").status_code == 403
    assert Conflict.objects.get(id=conflict["id"]).resolved_at is None


@pytest.mark.parametrize("value", [None, 7, ["Paint"], {"v": 1}, "x" * 201, True])
def test_a_value_the_field_cannot_hold_is_refused(conflict, value):
    answer = resolve(conflict["owner"], conflict["id"], value)
    assert answer.status_code == 400 and "value" in answer.json()
    assert Conflict.objects.get(id=conflict["id"]).resolved_at is None


def test_keeping_the_value_announces_the_resolution_alone_and_only_once(conflict):
    before = events_of(conflict["todo"])
    answer = resolve(conflict["owner"], conflict["id"], "Paint blue")
    assert answer.status_code == 200 and answer.json()["resolution"] == "Paint blue"
    assert events_of(conflict["todo"])[len(before):] == ["TodoConflictResolved"]
    assert resolve(conflict["owner"], conflict["id"], "Paint green").status_code == 409
    assert helpers.api_client(conflict["owner"]).get("/api/conflicts/").json() == []
    assert [c["conflictId"] for c in helpers.api_client(conflict["owner"]).get("/api/conflicts/?all=true").json()] == [
        conflict["id"]]


def test_another_value_is_set_by_the_fields_own_event(conflict):
    before = events_of(conflict["todo"])
    assert resolve(conflict["owner"], conflict["id"], "Paint it white").status_code == 200
    assert events_of(conflict["todo"])[len(before):] == ["TodoConflictResolved", "TodoUpdated"]
    assert TodoState.objects.get(id=conflict["todo"]).title == "Paint it white"


def test_a_conflict_of_a_deleted_todo_cannot_be_resolved(conflict):
    services.todo_delete(actor=conflict["owner"], todo_id=conflict["todo"], correlation_id="d")
    assert resolve(conflict["owner"], conflict["id"], "Paint red").status_code == 409


def test_the_policy_is_read_and_chosen_by_its_user(user_factory):
    client = helpers.api_client(user_factory())
    assert client.get("/api/sync/settings/").json() == {"conflictPolicy": "lww"}
    assert client.put("/api/sync/settings/", {"conflictPolicy": "manual"}, format="json").json() == {
        "conflictPolicy": "manual"}
    assert client.get("/api/sync/settings/").json() == {"conflictPolicy": "manual"}
    for bad in ({"conflictPolicy": "coin-flip"}, {}, {"conflictPolicy": "lww", "other": 1}, ["lww"]):
        assert client.put("/api/sync/settings/", bad, format="json").status_code == 400
    assert APIClient().get("/api/sync/settings/").status_code == 401
