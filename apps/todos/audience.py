"""Who hears of a todo, in one place: who may see it, and whom its events notify.

Both rules are read by several apps (the commands here, the projection's queries, the
notification consumer), and each is written once, here; a second copy elsewhere would let a new
rule be silently ignored by the other place.

- Who may see a todo: its owner, its assignee and the members of its team. `may_see` decides
  it for one todo in Python; `may_see_q` is the same rule as a query filter, over the field
  names of any model that carries owner, assignee and team (the write-side state, the read
  tables); tests/todos/test_audience.py proves the two agree.
- Whom an event notifies: NOTIFY_RULES, as data. `who` names a role of the todo after the event,
  `when` an extra condition on the event. Nobody is told of their own action. The producer flags
  an event `notificationRequired` when a rule names someone else; the notification consumer
  applies the same rules (and each recipient's preferences, per category).
"""
from collections.abc import Callable, Collection
from dataclasses import dataclass

from django.db.models import Q

from apps.todos import events
from apps.todos.models import Team

OWNER = "owner"
ASSIGNEE = "assignee"

# metadata.category of the events that notify, with the label people choose them by.
CATEGORY_LABELS: dict[str, str] = {
    events.CATEGORIES[events.TODO_ASSIGNED]: "Assigned to you",
    events.CATEGORIES[events.TODO_COMPLETED]: "Your todo completed by someone else",
    events.CATEGORIES[events.TODO_PRIORITIZED]: "A todo of yours made urgent",
}


def may_see(user_id: int, *, owner_id: int, assignee_id: int | None, team_members: Collection[int]) -> bool:
    return user_id in (owner_id, assignee_id) or user_id in team_members


def may_see_q(user_id: int, *, owner: str, assignee: str, team: str) -> Q:
    """`may_see` as a filter: `owner`, `assignee` and `team` name the model's fields."""
    teams = Team.members.through.objects.filter(user_id=user_id).values("team_id")
    return Q(**{owner: user_id}) | Q(**{assignee: user_id}) | Q(**{f"{team}__in": teams})


def _always(envelope: dict) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    event_type: str
    who: str  # OWNER or ASSIGNEE
    when: Callable[[dict], bool] = _always

    @property
    def category(self) -> str:
        return events.CATEGORIES[self.event_type]


NOTIFY_RULES: tuple[Rule, ...] = (
    Rule(events.TODO_ASSIGNED, who=ASSIGNEE,
         when=lambda envelope: envelope["data"]["assignedTo"] is not None),  # null: unassigned
    Rule(events.TODO_COMPLETED, who=OWNER),
    Rule(events.TODO_PRIORITIZED, who=ASSIGNEE, when=lambda envelope: envelope["data"]["priority"] == "urgent"),
)


def matching(envelope: dict) -> list[Rule]:
    return [rule for rule in NOTIFY_RULES if rule.event_type == envelope["eventType"] and rule.when(envelope)]


def recipient(rule: Rule, envelope: dict, *, assignee_id: int | None) -> int | None:
    """Whom `rule` tells of `envelope`; `assignee_id` is the todo's assignee as last known (the
    event's own assignedTo wins)."""
    if rule.who == OWNER:
        return int(envelope["userId"])
    assignee = envelope["data"].get("assignedTo")
    return int(assignee) if assignee else assignee_id


def notified(envelope: dict, *, actor_id: int | None, assignee_id: int | None) -> list[tuple[Rule, int]]:
    """(rule, recipient) for everyone but the actor whom the rules name for this event."""
    told = []
    for rule in matching(envelope):
        user_id = recipient(rule, envelope, assignee_id=assignee_id)
        if user_id is not None and user_id != actor_id:
            told.append((rule, user_id))
    return told
