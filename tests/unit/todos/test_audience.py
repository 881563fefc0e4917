"""Who hears of a todo (apps.todos.audience): the notification rules and who may see it."""
import uuid

import pytest

from apps.notifications import rules as templates
from apps.todos import audience, events


def envelope(event_type: str, data: dict, owner: str = "1") -> dict:
    return {"eventType": event_type, "userId": owner, "data": data}


ASSIGNED_TO_2 = envelope(events.TODO_ASSIGNED, {"assignedTo": "2"})
UNASSIGNED = envelope(events.TODO_ASSIGNED, {"assignedTo": None})
COMPLETED = envelope(events.TODO_COMPLETED, {})
URGENT = envelope(events.TODO_PRIORITIZED, {"priority": "urgent"})
HIGH = envelope(events.TODO_PRIORITIZED, {"priority": "high"})


@pytest.mark.parametrize(("event", "actor", "assignee", "told"), [
    (ASSIGNED_TO_2, 1, None, [2]),
    (ASSIGNED_TO_2, 2, None, []),  # assigned themself: nobody is told of their own action
    (UNASSIGNED, 1, 2, []),
    (COMPLETED, 2, 2, [1]),  # the assignee completed it: the owner hears
    (COMPLETED, 1, 2, []),
    (URGENT, 1, 3, [3]),
    (URGENT, 1, None, []),  # nobody assigned: nobody to tell
    (URGENT, 3, 3, []),
    (HIGH, 1, 3, []),
    (envelope(events.TODO_UPDATED, {"title": "t"}), 2, 2, []),
])
def test_the_rules_name_whom_an_event_tells(event, actor, assignee, told):
    assert [user for _, user in audience.notified(event, actor_id=actor, assignee_id=assignee)] == told


def test_every_rule_has_a_category_people_can_choose_and_a_template():
    for rule in audience.NOTIFY_RULES:
        assert rule.category in audience.CATEGORY_LABELS, f"{rule}: label its category in CATEGORY_LABELS"
        assert rule.category in templates.TEMPLATES, f"{rule}: give its category templates in apps.notifications.rules"


@pytest.mark.parametrize(("user", "visible"), [(1, True), (2, True), (3, True), (4, False)])
def test_owner_assignee_and_team_members_may_see_a_todo(user, visible):
    assert audience.may_see(user, owner_id=1, assignee_id=2, team_members={3, 1}) is visible


def test_the_filter_names_the_fields_it_is_given():
    q = audience.may_see_q(7, owner="owner_id", assignee="assigned_to_id", team="team_id")
    assert q.connector == "OR"
    assert [name for name, _ in q.children] == ["owner_id", "assigned_to_id", "team_id__in"]


def test_no_rule_for_an_unknown_event_type():
    assert audience.matching(envelope("TodoExploded", {})) == []
    assert audience.notified(envelope(events.TODO_CREATED, {"title": "x", "id": str(uuid.uuid4())}),
                             actor_id=1, assignee_id=None) == []
