"""The notification rules, as data: which event tells whom, about what, with which template.

To add one, add a Rule. `who` names a role of the todo (after the event), `when` an extra
condition on the event and the todo. Nobody is told about their own action, and everyone's
preferences (category x channel) are honoured by the consumer.
"""
from collections.abc import Callable
from dataclasses import dataclass

from apps.todos import events

OWNER = "owner"
ASSIGNEE = "assignee"


@dataclass(frozen=True)
class Rule:
    event_type: str
    who: str  # OWNER or ASSIGNEE
    template: str  # notifications/<template>.{subject.txt,txt,html}
    when: Callable[[dict], bool] = lambda envelope: True


RULES: tuple[Rule, ...] = (
    Rule(events.TODO_ASSIGNED, who=ASSIGNEE, template="assigned",
         when=lambda envelope: envelope["data"]["assignedTo"] is not None),  # null: unassigned
    Rule(events.TODO_COMPLETED, who=OWNER, template="completed"),
    Rule(events.TODO_PRIORITIZED, who=ASSIGNEE, template="urgent",
         when=lambda envelope: envelope["data"]["priority"] == "urgent"),
)


def matching(envelope: dict) -> list[Rule]:
    return [rule for rule in RULES if rule.event_type == envelope["eventType"] and rule.when(envelope)]
