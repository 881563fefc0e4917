"""Each audience rule has one home (apps.todos.audience): the producer, the read side and the
notification consumer all follow it, so a new rule is one change."""
import itertools
import uuid

import pytest
from django.utils import timezone

from apps.notifications import services as notifications
from apps.notifications.models import Notification
from apps.todos import audience, events, services
from apps.todos.models import TodoState
from tests.factories import teammates


@pytest.mark.django_db
def test_the_query_form_of_who_may_see_agrees_with_the_rule(user_factory):
    people = [user_factory() for _ in range(4)]
    team = teammates(people[0], people[1])
    todos = []
    for owner, assignee, team_id in itertools.product(people[:2], [None, *people], [None, team.id]):
        if team_id is not None and owner not in (people[0], people[1]):
            continue
        todos.append(TodoState.objects.create(owner_id=owner.pk, assigned_to_id=assignee and assignee.pk,
                                              team_id=team_id, version=1, title="t", description="",
                                              created_at=timezone.now()))
    members = set(team.members.values_list("pk", flat=True))
    for user in people:
        by_rule = {todo.id for todo in todos if audience.may_see(
            user.pk, owner_id=todo.owner_id, assignee_id=todo.assigned_to_id,
            team_members=members if todo.team_id else set())}
        by_query = set(TodoState.objects.filter(audience.may_see_q(
            user.pk, owner="owner_id", assignee="assigned_to_id", team="team_id")).values_list("id", flat=True))
        assert by_query == by_rule, user.username


def completed_by_owner(alice, bob) -> list[dict]:
    created = services.todo_create(actor=alice, title="Ship it", correlation_id="c")
    assigned = services.todo_assign(actor=alice, todo_id=created.todo_id, assignee=bob, correlation_id="c")
    completed = services.todo_complete(actor=alice, todo_id=created.todo_id, correlation_id="c")
    return [events.read(e) for e in created.events + assigned.events + completed.events]


@pytest.mark.django_db
def test_a_new_rule_is_one_change_heard_by_producer_and_consumer_alike(user_factory, monkeypatch):
    alice, bob = user_factory(email="a@example.test"), user_factory(email="b@example.test")
    teammates(alice, bob)
    before = completed_by_owner(alice, bob)
    assert not before[-1]["metadata"]["notificationRequired"], "today the assignee is not told of a completion"

    # The one change: tell the assignee too when the owner completes the todo.
    monkeypatch.setattr(audience, "NOTIFY_RULES", (*audience.NOTIFY_RULES,
                                                    audience.Rule(events.TODO_COMPLETED, who=audience.ASSIGNEE)))
    after = completed_by_owner(alice, bob)
    assert after[-1]["metadata"]["notificationRequired"], "the producer flags the event by the new rule"
    for envelope in after:
        notifications.notify(envelope)
    told = Notification.objects.filter(event_id=uuid.UUID(after[-1]["eventId"]))
    assert {(n.recipient_id, n.category) for n in told} == {(bob.pk, "completed")}, "the consumer applies it"
