"""What the reminder role did with a command's events: the reminders a schedule armed, and
whether they fired."""
from apps.reminders.models import Reminder
from apps.todos.events import TODO_SCHEDULED
from polystack.ops.trace import Step, TracedEvent, tracer


@tracer("reminders")
def reminders(events: list[TracedEvent]) -> list[Step]:
    steps = []
    for e in events:
        if e.event_type != TODO_SCHEDULED:
            continue
        for r in Reminder.objects.filter(todo_id=e.todo_id, scheduled_by=e.version).order_by("remind_at"):
            fired = f", fired {r.fired_at:%Y-%m-%d %H:%M:%S}" + (" (late)" if r.late else "") if r.fired_at else ""
            steps.append(Step(event_id=e.event_id, at=r.fired_at,
                              what=f"{r.reminder_type} reminder for {r.remind_at:%Y-%m-%d %H:%M:%S}: {r.state}{fired}"))
    return steps
