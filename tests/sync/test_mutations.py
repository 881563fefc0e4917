"""Device mutations against the real database: each applies exactly once and in order, and
concurrent edits end as the todo owner's policy says — the scenario table of Phase 5 (two
devices on one field, different fields, edit vs delete, edit vs complete, a device offline for
days, three devices at once), each under every policy."""
import itertools
import time
import uuid

import pytest

from apps.sync import mutations
from apps.sync.api.serializers import MutationSerializer
from apps.sync.conflicts import LWW, MANUAL, MERGE
from apps.sync.models import Conflict, Device, SyncSettings
from apps.todos import services
from apps.todos.models import OutboxEvent, TodoState

POLICIES = [LWW, MERGE, MANUAL]
NOW = int(time.time() * 1000)
DAYS_AGO = NOW - 3 * 24 * 3600 * 1000


class Phones:
    """One user's devices, each numbering its own mutations."""

    def __init__(self, user, names):
        self.user = user
        self.devices = {name: Device.objects.create(user=user, name=name, platform="mobile") for name in names}
        self.numbers = {name: itertools.count(1) for name in names}

    def push(self, name: str, kind: str, todo_id, *, base: int, at: int, number: int | None = None, **args) -> dict:
        raw = {"id": next(self.numbers[name]) if number is None else number, "name": kind, "todoId": str(todo_id),
               "baseVersion": base, "hlc": f"{at}:0", "args": args}
        checked = MutationSerializer(data=raw)
        assert checked.is_valid(), checked.errors
        return mutations.mutation_apply(user=self.user, device_id=self.devices[name].id, number=raw["id"],
                                        mutation=checked.validated_data)


@pytest.fixture
def owner(user_factory):
    return user_factory()


def todo_of(user, **fields) -> uuid.UUID:
    return services.todo_create(actor=user, title=fields.get("title", "Original"), correlation_id="t").todo_id


def state(todo_id) -> TodoState:
    return TodoState.objects.get(id=todo_id)


def with_policy(user, policy: str) -> None:
    SyncSettings.objects.create(user=user, conflict_policy=policy)


# --- the scenario table --------------------------------------------------------------------
@pytest.mark.parametrize("policy, title, b_result", [
    (LWW, "from B", {"applied": ["title"], "lost": {}}),  # B's clock is later
    (MERGE, "from B", {"applied": ["title"], "lost": {}}),  # title has no rule: last write wins
    (MANUAL, "from A", {"applied": [], "lost": {}}),  # kept, and a conflict to resolve
])
def test_same_field_from_two_devices(owner, policy, title, b_result):
    with_policy(owner, policy)
    phones = Phones(owner, ["A", "B"])
    todo = todo_of(owner)
    assert phones.push("A", "update", todo, base=1, at=NOW - 2000, title="from A")["applied"] == ["title"]
    b = phones.push("B", "update", todo, base=1, at=NOW - 1000, title="from B")
    assert {k: b[k] for k in ("applied", "lost")} == b_result
    assert state(todo).title == title
    conflicts = list(Conflict.objects.filter(todo_id=todo))
    if policy == MANUAL:
        assert [(c.field, c.local_value, c.remote_value, c.local_device_id) for c in conflicts] == [
            ("title", "from B", "from A", phones.devices["B"].id)]
        assert b["conflicts"] == [{"conflictId": str(conflicts[0].id), "field": "title", "localValue": "from B",
                                   "remoteValue": "from A"}]
        assert OutboxEvent.objects.filter(event_type="TodoConflictDetected").count() == 1
    else:
        assert conflicts == []


@pytest.mark.parametrize("policy", POLICIES)
def test_an_older_write_pushed_later_loses_to_the_newer_one_under_lww(owner, policy):
    """B edited first (offline) and pushes last: its clock, not its arrival, decides."""
    with_policy(owner, policy)
    phones = Phones(owner, ["A", "B"])
    todo = todo_of(owner)
    phones.push("A", "update", todo, base=1, at=NOW - 1000, title="from A")
    b = phones.push("B", "update", todo, base=1, at=NOW - 2000, title="from B")
    assert state(todo).title == "from A"
    assert b["lost"] == ({} if policy == MANUAL else {"title": "from A"})
    assert len(b["conflicts"]) == (1 if policy == MANUAL else 0)


@pytest.mark.parametrize("policy", POLICIES)
def test_different_fields_merge_under_every_policy(owner, policy):
    with_policy(owner, policy)
    phones = Phones(owner, ["A", "B"])
    todo = todo_of(owner)
    phones.push("A", "update", todo, base=1, at=NOW - 2000, title="new title")
    b = phones.push("B", "update", todo, base=1, at=NOW - 3000, description="new description", priority="high")
    assert b["applied"] == ["description", "priority"] and b["lost"] == {} and b["conflicts"] == []
    after = state(todo)
    assert (after.title, after.description, after.priority) == ("new title", "new description", "high")
    assert not Conflict.objects.exists()


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("delete_first", [True, False])
def test_edit_vs_delete_the_todo_stays_deleted_and_the_edit_is_reported(owner, policy, delete_first):
    with_policy(owner, policy)
    phones = Phones(owner, ["A", "B"])
    todo = todo_of(owner)
    if delete_first:
        phones.push("A", "delete", todo, base=1, at=NOW - 2000)
        edit = phones.push("B", "update", todo, base=1, at=NOW - 1000, title="too late")
        assert edit["status"] == "applied" and edit["applied"] == [] and edit["lost"] == {"deleted": True}
    else:
        phones.push("B", "update", todo, base=1, at=NOW - 1000, title="edited")
        deletion = phones.push("A", "delete", todo, base=1, at=NOW - 2000)
        assert deletion["applied"] == ["deleted"]
    assert state(todo).deleted
    assert not Conflict.objects.exists()


@pytest.mark.parametrize("policy", POLICIES)
def test_edit_vs_complete_both_apply(owner, policy):
    with_policy(owner, policy)
    phones = Phones(owner, ["A", "B"])
    todo = todo_of(owner)
    assert phones.push("A", "complete", todo, base=1, at=NOW - 1000)["applied"] == ["completed"]
    assert phones.push("B", "update", todo, base=1, at=NOW - 2000, title="edited")["applied"] == ["title"]
    assert phones.push("B", "complete", todo, base=1, at=NOW - 1500)["applied"] == []  # completed already
    after = state(todo)
    assert (after.completed, after.title) == (True, "edited")


@pytest.mark.parametrize("policy, title, priority, conflicts", [
    (LWW, "from A today", "low", 0),  # every field B also changed was changed later by A
    (MERGE, "from A today", "urgent", 0),  # priority's rule: the higher one
    (MANUAL, "from A today", "low", 2),  # one conflict per field, updated by each later edit of B
])
def test_a_device_offline_for_days_making_many_edits(owner, policy, title, priority, conflicts):
    with_policy(owner, policy)
    phones = Phones(owner, ["A", "B"])
    todo = todo_of(owner)
    # B, offline three days ago, edits the todo five times (its own edits follow each other).
    # A, online today, changes the title and the priority.
    phones.push("A", "update", todo, base=1, at=NOW - 1000, title="from A today", priority="low")
    results = [phones.push("B", "update", todo, base=1, at=DAYS_AGO + n, title=f"offline {n}", priority="urgent",
                           description=f"notes {n}") for n in range(5)]
    after = state(todo)
    assert (after.title, after.priority, after.description) == (title, priority, "notes 4")
    assert all(r["status"] == "applied" for r in results)
    open_ = list(Conflict.objects.filter(todo_id=todo, resolved_at__isnull=True))
    assert len(open_) == conflicts
    if policy == MANUAL:
        assert sorted((c.field, c.local_value) for c in open_) == [("priority", "urgent"), ("title", "offline 4")]


@pytest.mark.parametrize("policy, title, conflicts", [
    (LWW, "from B", 0), (MERGE, "from B", 0), (MANUAL, "from A", 2)])
def test_three_devices_at_once(owner, policy, title, conflicts):
    with_policy(owner, policy)
    phones = Phones(owner, ["A", "B", "C"])
    todo = todo_of(owner)
    phones.push("A", "update", todo, base=1, at=NOW - 3000, title="from A")
    phones.push("B", "update", todo, base=1, at=NOW - 1000, title="from B")  # the latest clock
    c = phones.push("C", "update", todo, base=1, at=NOW - 2000, title="from C")
    assert state(todo).title == title
    assert c["lost"] == ({} if policy == MANUAL else {"title": "from B"})
    assert Conflict.objects.filter(todo_id=todo).count() == conflicts


def test_equal_clocks_are_broken_by_device_id(owner):
    phones = Phones(owner, ["A", "B"])
    todo = todo_of(owner)
    high, low = sorted(phones.devices, key=lambda name: str(phones.devices[name].id), reverse=True)
    phones.push(low, "update", todo, base=1, at=NOW - 1000, title=f"from {low}")
    phones.push(high, "update", todo, base=1, at=NOW - 1000, title=f"from {high}")
    assert state(todo).title == f"from {high}"
    phones.push(low, "update", todo, base=1, at=NOW - 1000, title=f"again from {low}")
    assert state(todo).title == f"from {high}"


def test_a_device_edit_older_than_a_rest_edit_loses_under_lww(owner):
    phones = Phones(owner, ["A"])
    todo = todo_of(owner)
    services.todo_update(actor=owner, todo_id=todo, title="from the API", correlation_id="r")
    result = phones.push("A", "update", todo, base=1, at=NOW - 60_000, title="from A")
    assert result["lost"] == {"title": "from the API"} and state(todo).title == "from the API"


# --- exactly once, in order ---------------------------------------------------------------
def test_a_mutation_applies_once_however_often_it_is_sent(owner):
    phones = Phones(owner, ["A"])
    todo = todo_of(owner)
    first = phones.push("A", "update", todo, base=1, at=NOW, number=1, title="once")
    again = phones.push("A", "update", todo, base=1, at=NOW, number=1, title="once")
    assert first["status"] == "applied" and again == {"id": 1, "status": "duplicate"}
    assert state(todo).version == 2
    assert OutboxEvent.objects.filter(event_type="TodoUpdated").count() == 1
    assert Device.objects.get(id=phones.devices["A"].id).last_mutation_id == 1


def test_a_gap_is_refused_and_nothing_of_it_applies(owner):
    phones = Phones(owner, ["A"])
    todo = todo_of(owner)
    with pytest.raises(mutations.MutationGapError) as refused:
        phones.push("A", "update", todo, base=1, at=NOW, number=2, title="skipped one")
    assert refused.value.last_mutation_id == 0
    assert state(todo).title == "Original" and state(todo).version == 1


def test_a_refused_mutation_counts_and_undoes_its_own_writes(owner, user_factory):
    phones = Phones(owner, ["A"])
    stranger_todo = todo_of(user_factory())
    mine = todo_of(owner)
    results = [
        phones.push("A", "update", stranger_todo, base=1, at=NOW, title="not mine"),
        # Ten minutes ahead of the clock now, not of NOW: the module may have been imported
        # minutes before this test runs (a late test of a long suite met a NOW 10 minutes old).
        phones.push("A", "update", mine, base=1, at=int(time.time() * 1000) + 10 * 60_000, title="from the future"),
        phones.push("A", "update", mine, base=1, at=NOW, title="fine", assignedTo=str(user_factory().pk)),
        phones.push("A", "create", mine, base=0, at=NOW, title="a taken id"),
    ]
    assert [r["status"] for r in results] == ["rejected"] * 4
    assert "not found" in results[0]["error"] and "ahead" in results[1]["error"]
    assert "share a team" in results[2]["error"] and "exists" in results[3]["error"]
    assert state(mine).title == "Original", "the rejected update's title went with its refused assignment"
    assert state(stranger_todo).title == "Original"
    assert Device.objects.get(id=phones.devices["A"].id).last_mutation_id == 4


def test_an_invalid_mutation_counts_as_rejected(owner):
    phones = Phones(owner, ["A"])
    result = mutations.mutation_apply(user=owner, device_id=phones.devices["A"].id, number=1, mutation=None,
                                      invalid={"hlc": ["This field is required."]})
    assert result == {"id": 1, "status": "rejected", "error": "invalid mutation",
                      "errors": {"hlc": ["This field is required."]}}
    assert Device.objects.get(id=phones.devices["A"].id).last_mutation_id == 1


def test_another_users_device_pushes_nothing(owner, user_factory):
    phones = Phones(owner, ["A"])
    with pytest.raises(mutations.DeviceGoneError):
        mutations.mutation_apply(user=user_factory(), device_id=phones.devices["A"].id, number=1, mutation=None)


def test_a_todo_created_offline_is_edited_by_the_same_device_without_conflict(owner):
    with_policy(owner, MANUAL)
    phones = Phones(owner, ["A"])
    todo = uuid.uuid4()
    created = phones.push("A", "create", todo, base=0, at=NOW - 3000, title="made offline")
    assert created["status"] == "applied" and created["version"] == 1
    edited = phones.push("A", "update", todo, base=0, at=NOW - 2000, title="renamed offline", priority="high")
    assert edited["applied"] == ["priority", "title"] and edited["conflicts"] == []
    event = OutboxEvent.objects.filter(event_type="TodoCreated").last().payload
    assert f'"deviceId": "{phones.devices["A"].id}"' in event and '"mutationId": 1' in event


def test_a_member_who_joins_gets_the_teams_todos_also_those_still_on_their_way(user_factory):
    """Joining copies the team's todos as the sink holds them. Those still on their way
    (committed, not in the sink yet: one created, one deleted) are copied by the catch-up task,
    which tries again while the sink lacks them; a member who left meanwhile gets nothing."""
    from celery.exceptions import Retry

    from apps.sync import tasks
    from apps.sync.models import SyncTodo, SyncUser
    from apps.todos.models import Team

    owner, newcomer = user_factory(), user_factory()
    team = Team.objects.create(name="home", owner=owner)
    team.members.add(owner)
    held = services.todo_create(actor=owner, title="held by the sink", team_id=team.id, correlation_id="a")
    on_its_way = services.todo_create(actor=owner, title="on its way", team_id=team.id, correlation_id="b")
    document = {"id": str(held.todo_id), "teamId": str(team.id), "title": "held by the sink", "version": 1}
    SyncTodo.objects.create(user_id=owner.pk, todo_id=held.todo_id, version=1, visible=True, todo=document)
    SyncUser.objects.create(user_id=newcomer.pk, partition=0, offset=5)

    team.members.add(newcomer)
    mine = SyncTodo.objects.filter(user_id=newcomer.pk)
    assert set(mine.values_list("todo_id", flat=True)) == {held.todo_id}
    assert SyncUser.objects.get(user_id=newcomer.pk).epoch == 1, "its devices take a snapshot"
    with pytest.raises(Retry):
        tasks.team_todos_catch_up(newcomer.pk, [str(team.id)])  # the sink lacks "on its way": later

    SyncTodo.objects.create(user_id=owner.pk, todo_id=on_its_way.todo_id, version=1, visible=True,
                            todo={**document, "id": str(on_its_way.todo_id), "title": "on its way"})
    assert tasks.team_todos_catch_up(newcomer.pk, [str(team.id)]) == 0
    assert mine.count() == 2 and SyncUser.objects.get(user_id=newcomer.pk).epoch == 2
    assert tasks.team_todos_catch_up(newcomer.pk, [str(team.id)]) == 0, "nothing newer: nothing changes"
    assert SyncUser.objects.get(user_id=newcomer.pk).epoch == 2

    services.todo_delete(actor=owner, todo_id=held.todo_id, correlation_id="c")  # its event was not for them
    with pytest.raises(Retry):
        tasks.team_todos_catch_up(newcomer.pk, [str(team.id)])
    SyncTodo.objects.filter(user_id=owner.pk, todo_id=held.todo_id).update(version=2, visible=False, todo=None)
    assert tasks.team_todos_catch_up(newcomer.pk, [str(team.id)]) == 0
    assert mine.get(todo_id=held.todo_id).visible is False, "deleted on their way: deleted for the newcomer too"

    services.todo_update(actor=owner, todo_id=on_its_way.todo_id, title="renamed", correlation_id="d")
    team.members.remove(newcomer)
    SyncTodo.objects.filter(user_id=owner.pk, todo_id=on_its_way.todo_id).update(version=2)
    assert tasks.team_todos_catch_up(newcomer.pk, [str(team.id)]) == 0, "left the team: nothing to catch up"
    assert mine.get(todo_id=on_its_way.todo_id).version == 1
