"""The scheduler (`python manage.py runscheduler`): fires each reminder of the due table at its
time, once, by writing ReminderDue to the outbox; the relay publishes it to reminder-events.

- On time: it sleeps until the earliest pending reminder (the database's clock decides) and is
  woken by NOTIFY when the reminders consumer arms one (services.ARMED_CHANNEL), so an earlier
  reminder never waits for a poll.
- Once: a claim takes due rows with FOR UPDATE SKIP LOCKED, marks them fired and appends their
  ReminderDue to the outbox in the same transaction. A row is fired or not, with its event or
  without; the unique key (todo, type, due date) keeps any path from making it pending again.
  A scheduler killed mid-claim leaves the transaction rolled back and the rows pending.
- Many: several schedulers may run; SKIP LOCKED gives each its own rows, none waits for another.
- Checked at fire time against the write side (apps.todos' TodoState): the todo exists, is the
  reminder's owner's, is neither completed nor deleted, and its schedule is still the one that
  armed the reminder. A reminder that fails that is cancelled, not fired: the due table follows
  events, which may lag or (written by anyone with access to the broker) lie.
- Late: a reminder fired more than REMINDER_LATE_AFTER_S after its time (the scheduler was
  down, or behind) says so (`late`), in the table and in its event.
"""
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.db import connection, transaction

from apps.reminders.models import Reminder
from apps.reminders.services import ARMED_CHANNEL
from apps.todos import reminder_events
from apps.todos.models import TodoState
from apps.todos.services import outbox_append
from polystack import db, metrics, outages
from polystack.streaming.topics import REMINDER_EVENTS

logger = logging.getLogger("apps.reminders.scheduler")

REMINDERS = Reminder._meta.db_table

# A moment as events write it (apps.todos.events.iso), formatted by PostgreSQL: loading each
# timestamp into Python to format it again was a fifth of a claim's time.
_ISO = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

# The claim. The CTE is MATERIALIZED so that the planner cannot fold it into the UPDATE and lock
# more rows than the LIMIT (a documented hazard of FOR UPDATE in a subquery); SKIP LOCKED lets
# another scheduler take the next rows instead of waiting for these.
_CLAIM = f"""
WITH due AS MATERIALIZED (
    SELECT id FROM {REMINDERS}
     WHERE state = 'pending' AND remind_at <= clock_timestamp()
     ORDER BY remind_at
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE {REMINDERS} AS r
   SET state = CASE WHEN EXISTS (
                   SELECT FROM {TodoState._meta.db_table} AS t
                    WHERE t.id = r.todo_id AND t.owner_id = r.owner_id AND NOT t.completed AND NOT t.deleted
                      AND t.schedule_version = r.scheduled_by)
               THEN 'fired' ELSE 'cancelled' END,
       fired_at = clock_timestamp(),
       late = clock_timestamp() - r.remind_at > %(late_after)s
  FROM due
 WHERE r.id = due.id
RETURNING r.state, r.todo_id, r.owner_id, r.reminder_type, {_ISO.format("r.due_date")}, {_ISO.format("r.remind_at")},
          r.late, r.correlation_id, {_ISO.format("r.fired_at")}
"""

_NEXT = f"SELECT extract(epoch FROM min(remind_at) - clock_timestamp()) FROM {REMINDERS} WHERE state = 'pending'"


@dataclass
class SchedulerStats:
    fired: int = 0
    cancelled: int = 0
    late: int = 0
    claims: int = 0


class Scheduler:
    def __init__(self, *, batch_size: int = 1000, max_sleep_s: float = 30.0):
        self.batch_size = batch_size
        self.max_sleep_s = max_sleep_s  # a safety net: NOTIFY wakes it for anything earlier
        self.stats = SchedulerStats()
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        """Fire reminders until stop(), waiting out PostgreSQL being down (the rows wait)."""
        outages.run_through(self._run_once, stopping=self._stopping, logger=logger, who="the scheduler",
                            waiting="reminders wait in the due table")

    def _run_once(self) -> None:
        with psycopg.connect(db.conninfo(), autocommit=True) as control:
            control.execute(f"LISTEN {ARMED_CHANNEL}")
            logger.info("scheduler running: firing reminders as they come due")
            while not self._stopping.is_set():
                if self.fire_due() == self.batch_size:
                    continue  # more are due right now
                # LISTEN came first, so a reminder armed after this read still wakes us.
                self._sleep(control, min(self.seconds_until_next(), self.max_sleep_s))

    def _sleep(self, control: psycopg.Connection, seconds: float) -> None:
        """Until `seconds` passed or a NOTIFY came, looking at the stop flag every second (a
        signal does not cut the wait short)."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            if any(True for _ in control.notifies(timeout=min(left, 1.0), stop_after=1)):
                break
        for _ in control.notifies(timeout=0):  # every notice that came meanwhile is one wake-up
            pass

    def seconds_until_next(self) -> float:
        """How long until the earliest pending reminder is due (0 if one is), by the database's
        clock; max_sleep_s when none is pending."""
        with connection.cursor() as cursor:
            cursor.execute(_NEXT)
            seconds = cursor.fetchone()[0]
        return self.max_sleep_s if seconds is None else max(0.0, float(seconds))

    def fire_due(self) -> int:
        """Claim up to batch_size due reminders and fire them, in one transaction; return how
        many rows were claimed (fired or cancelled)."""
        late_after = timedelta(seconds=settings.REMINDER_LATE_AFTER_S)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CLAIM, {"limit": self.batch_size, "late_after": late_after})
            claimed = cursor.fetchall()
            fired = [row for row in claimed if row[0] == Reminder.FIRED]
            if fired:
                outbox_append(cursor, [_reminder_due(row) for row in fired], topic=REMINDER_EVENTS)
        late = sum(1 for row in fired if row[6])
        for row in fired:  # fired_at - remind_at
            metrics.REMINDER_LATENESS.observe((datetime.fromisoformat(row[8]) - datetime.fromisoformat(row[5]))
                                              .total_seconds())
        self.stats.claims += 1
        self.stats.fired += len(fired)
        self.stats.cancelled += len(claimed) - len(fired)
        self.stats.late += late
        if claimed:
            logger.info("fired %d reminders (%d late), cancelled %d whose todo or schedule changed",
                        len(fired), late, len(claimed) - len(fired))
        return len(claimed)


def _reminder_due(row: tuple) -> dict:
    _, todo_id, owner_id, kind, due_date, remind_at, late, correlation_id, fired_at = row
    return reminder_events.new_envelope(
        event_type=reminder_events.REMINDER_DUE, todo_id=todo_id, user_id=owner_id,
        data={"reminderType": kind, "dueDate": due_date, "remindAt": remind_at, "late": late},
        correlation_id=correlation_id or f"reminder-{uuid.uuid4()}", occurred_at=fired_at,
    )
