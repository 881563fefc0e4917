"""How each notification reads: the template of each category. Who is told of what is decided
once, in apps.todos.audience (NOTIFY_RULES), for the producer and this consumer alike; a rule
of a new category needs its templates here, notifications/<template>.{subject.txt,txt,html}."""
from apps.notifications.models import REMINDER
from apps.todos import events

TEMPLATES: dict[str, str] = {
    events.CATEGORIES[events.TODO_ASSIGNED]: "assigned",
    events.CATEGORIES[events.TODO_COMPLETED]: "completed",
    events.CATEGORIES[events.TODO_PRIORITIZED]: "urgent",
    REMINDER: "reminder",  # of a ReminderDue (services.remind), not of a rule
}
