"""Writes of the reminders app: the due table follows the todos' events.

Each todo event is applied once, in version order (`TodoSchedule.version`): a TodoScheduled arms
the reminders it names and cancels the pending ones it no longer names; TodoCompleted and
TodoDeleted cancel what is pending and close the todo. A reminder that fired stays fired
(`Reminder`'s unique key covers every state), so no redelivery, replay or reschedule back to
the same time can make it fire again.
"""
import logging
from datetime import datetime, timedelta

from django.db import connection, transaction

from apps.reminders.models import Reminder, TodoSchedule
from apps.todos import events
from polystack.streaming.registry import NonRetriableError

logger = logging.getLogger("apps.reminders")

CLOSING = frozenset({events.TODO_COMPLETED, events.TODO_DELETED})


class ImpossibleScheduleError(NonRetriableError):
    """A TodoScheduled no command can have made (a reminder after its due date, or without
    one): anyone who can write to the topic can send it; it goes to the DLQ, not the table."""


def reminder_type(*, due_date: datetime, remind_at: datetime) -> str:
    """How long before the due date a reminder comes, as an ISO 8601 duration: "P1D", "PT1H",
    "P1DT2H30M", "PT0.5S", "PT0S" (at the due date itself), "-PT10M" (after it: a snooze)."""
    if remind_at > due_date:
        return "-" + reminder_type(due_date=remind_at, remind_at=due_date)
    left = due_date - remind_at
    micros = (left - timedelta(days=left.days)) // timedelta(microseconds=1)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or micros:
        time += f"{seconds}.{micros:06d}".rstrip("0").rstrip(".") + "S"
    if not left.days and not time:
        return "PT0S"
    return "P" + (f"{left.days}D" if left.days else "") + (f"T{time}" if time else "")


ARMED_CHANNEL = "reminders_armed"  # NOTIFYed at the commit of anything that arms: the scheduler wakes

_ARM = f"""
INSERT INTO {Reminder._meta.db_table}
       (todo_id, owner_id, reminder_type, due_date, remind_at, state, scheduled_by, late, correlation_id)
SELECT %(todo)s, %(owner)s, kind, %(due)s, at, 'pending', %(version)s, false, %(correlation)s
  FROM unnest(%(kinds)s::text[], %(times)s::timestamptz[]) AS wanted(kind, at)
ON CONFLICT (todo_id, reminder_type, due_date)
DO UPDATE SET state = 'pending', scheduled_by = EXCLUDED.scheduled_by, correlation_id = EXCLUDED.correlation_id
 WHERE {Reminder._meta.db_table}.state <> 'fired'
"""


def _arm_rows(*, todo_id, owner_id: int, due: datetime, times: list[datetime], kinds: list[str], version: int,
              correlation_id: str) -> None:
    """Arm (or re-arm, unless fired) the reminders at `times` (of types `kinds`) of the due date
    `due`, and wake the scheduler when this transaction commits."""
    with connection.cursor() as cursor:
        cursor.execute(_ARM, {"todo": todo_id, "owner": owner_id, "due": due, "version": version, "kinds": kinds,
                              "times": times, "correlation": correlation_id})
        cursor.execute("SELECT pg_notify(%s, '')", [ARMED_CHANNEL])


def _arm(schedule: TodoSchedule, data: dict, version: int, correlation_id: str) -> None:
    due = datetime.fromisoformat(data["dueDate"]) if data["dueDate"] else None
    times = [datetime.fromisoformat(moment) for moment in data["reminderTimes"]]
    if due is None and times:
        raise ImpossibleScheduleError("reminder times without a due date")
    if any(moment > due for moment in times):
        raise ImpossibleScheduleError("a reminder time after the due date")
    kinds = [reminder_type(due_date=due, remind_at=moment) for moment in times]
    pending = Reminder.objects.filter(todo_id=schedule.todo_id, state=Reminder.PENDING)
    if due is not None:
        pending = pending.exclude(due_date=due, reminder_type__in=kinds)
    pending.update(state=Reminder.CANCELLED)  # what this schedule no longer asks for
    if times:
        _arm_rows(todo_id=schedule.todo_id, owner_id=schedule.owner_id, due=due, times=times, kinds=kinds,
                  version=version, correlation_id=correlation_id)
    schedule.due_date, schedule.scheduled_version = due, version


@transaction.atomic
def todo_event_apply(*, envelope: dict) -> bool:
    """Apply one (current-version) todo event to the due table; False when it was seen before."""
    todo_id, version = envelope["aggregateId"], envelope["aggregateVersion"]
    TodoSchedule.objects.bulk_create([TodoSchedule(todo_id=todo_id, owner_id=int(envelope["userId"]), version=0)],
                                     ignore_conflicts=True)  # two appliers may meet a new todo at once
    schedule = TodoSchedule.objects.select_for_update().get(todo_id=todo_id)
    if version <= schedule.version:
        return False  # a redelivery, or older than what was applied
    event_type = envelope["eventType"]
    if event_type == events.TODO_SCHEDULED and not schedule.closed:
        _arm(schedule, envelope["data"], version, envelope["correlationId"])
    elif event_type in CLOSING:
        schedule.closed = True
        Reminder.objects.filter(todo_id=todo_id, state=Reminder.PENDING).update(state=Reminder.CANCELLED)
    schedule.version = version
    schedule.save()
    return True


@transaction.atomic
def snooze_apply(*, envelope: dict) -> bool:
    """Arm the reminder a ReminderSnoozed asks for: at snoozeUntil, as a reminder of its own
    (its type the time from there to the due date, so a redelivered snooze is the same row and
    fires once). False when the todo is closed or its schedule changed since the snooze."""
    data = envelope["data"]
    schedule = TodoSchedule.objects.filter(todo_id=data["todoId"]).first()
    if schedule is not None and (schedule.closed or schedule.scheduled_version > data["scheduledVersion"]):
        return False
    due, until = datetime.fromisoformat(data["dueDate"]), datetime.fromisoformat(data["snoozeUntil"])
    _arm_rows(todo_id=data["todoId"], owner_id=int(envelope["userId"]), due=due, times=[until],
              kinds=[reminder_type(due_date=due, remind_at=until)], version=data["scheduledVersion"],
              correlation_id=envelope["correlationId"])
    return True
