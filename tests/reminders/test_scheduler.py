"""The scheduler (apps.reminders.scheduler): each due reminder fires once, with its ReminderDue
in the outbox in the same transaction, only while the schedule that armed it still holds; as
processes, two schedulers killed in turn fire each reminder once, and one started late fires
what came due meanwhile, marked late. (On time, through the relay: tests/reminders/test_delivery.py.)"""
import json
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.todos import reminder_events
from apps.notifications.models import IN_APP, REMINDER, NotificationPreference, TodoFacts
from apps.reminders import services
from apps.reminders.models import Reminder
from apps.reminders.scheduler import Scheduler
from apps.todos import services as todos
from apps.todos.events import iso
from apps.todos.models import OutboxEvent, TodoState
from polystack.streaming.topics import REMINDER_EVENTS, resolve
from tests.helpers import caught_up, consume_to_end, unique, wait_until


def scheduled_todo(owner, *, due_in=timedelta(days=1), reminders_in=(timedelta(hours=1), timedelta(hours=2))):
    """A todo created by the command, its events applied to the due table (as the reminders
    consumer would); returns its id."""
    now = timezone.now()
    result = todos.todo_create(actor=owner, title="Water the plants", due_date=now + due_in,
                               reminder_times=[now + delay for delay in reminders_in], correlation_id="corr-1")
    for envelope in result.events:
        services.todo_event_apply(envelope=envelope)
    return result.todo_id


def come_due(todo_id, ago=timedelta(seconds=1)) -> Reminder:
    """Move the todo's earliest reminder to `ago` in the past."""
    reminder = Reminder.objects.filter(todo_id=todo_id).order_by("remind_at").first()
    Reminder.objects.filter(pk=reminder.pk).update(remind_at=timezone.now() - ago)
    return Reminder.objects.get(pk=reminder.pk)


def reminder_events_in_outbox() -> list[dict]:
    rows = OutboxEvent.objects.filter(topic=resolve(REMINDER_EVENTS)).order_by("id")
    return [{"key": row.key, **reminder_events.read(json.loads(row.payload))} for row in rows]


@pytest.mark.django_db
def test_a_due_reminder_fires_once_with_its_event_in_the_outbox(user_factory):
    alice = user_factory(username="alice")
    todo_id = scheduled_todo(alice)
    due = come_due(todo_id)
    assert Scheduler().fire_due() == 1
    assert Scheduler().fire_due() == 0, "fired already: nothing left to claim"

    fired = Reminder.objects.get(pk=due.pk)
    assert (fired.state, fired.late) == (Reminder.FIRED, False)
    assert Reminder.objects.filter(todo_id=todo_id, state=Reminder.PENDING).count() == 1, "the later one waits"
    [event] = reminder_events_in_outbox()
    assert event["key"] == str(alice.pk) == event["userId"]
    assert event["eventType"] == reminder_events.REMINDER_DUE
    assert event["correlationId"] == "corr-1", "the command that armed it"
    assert event["data"] == {"todoId": str(todo_id), "reminderType": due.reminder_type, "late": False,
                             "dueDate": iso(due.due_date), "remindAt": iso(due.remind_at)}


@pytest.mark.django_db
def test_a_reminder_fired_well_after_its_time_is_marked_late(user_factory, settings):
    settings.REMINDER_LATE_AFTER_S = 5.0
    todo_id = scheduled_todo(user_factory(username="alice"))
    due = come_due(todo_id, ago=timedelta(minutes=3))  # the scheduler was down
    Scheduler().fire_due()
    assert Reminder.objects.get(pk=due.pk).late
    assert reminder_events_in_outbox()[0]["data"]["late"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["completed", "deleted", "rescheduled", "cleared"])
def test_a_reminder_whose_todo_or_schedule_changed_is_cancelled_not_fired(user_factory, change):
    """The due table has not seen the change yet (the consumer lags): the write side decides."""
    alice = user_factory(username="alice")
    todo_id = scheduled_todo(alice)
    due = come_due(todo_id)
    command = {
        "completed": lambda: todos.todo_complete(actor=alice, todo_id=todo_id, correlation_id="c"),
        "deleted": lambda: todos.todo_delete(actor=alice, todo_id=todo_id, correlation_id="c"),
        "rescheduled": lambda: todos.todo_schedule(actor=alice, todo_id=todo_id, correlation_id="c",
                                                   due_date=timezone.now() + timedelta(days=2)),
        "cleared": lambda: todos.todo_schedule(actor=alice, todo_id=todo_id, due_date=None, correlation_id="c"),
    }[change]
    command()  # its events are not applied to the due table
    assert Scheduler().fire_due() == 1
    assert Reminder.objects.get(pk=due.pk).state == Reminder.CANCELLED
    assert reminder_events_in_outbox() == []


@pytest.mark.django_db
@pytest.mark.parametrize("forged", ["no such todo", "someone else's todo", "an old schedule"])
def test_reminders_armed_by_forged_events_never_fire(user_factory, forged):
    """Anyone who can write to todo-events can arm a row; the scheduler checks it at fire time."""
    alice, mallory = user_factory(username="alice"), user_factory(username="mallory")
    todo_id = scheduled_todo(alice)
    state = TodoState.objects.get(pk=todo_id)
    row = {"no such todo": {"todo_id": uuid.uuid4(), "owner_id": mallory.pk, "scheduled_by": 1},
           "someone else's todo": {"todo_id": todo_id, "owner_id": mallory.pk, "scheduled_by": state.schedule_version},
           "an old schedule": {"todo_id": todo_id, "owner_id": alice.pk, "scheduled_by": state.schedule_version - 1},
           }[forged]
    now = timezone.now()
    Reminder.objects.create(reminder_type="PT5M", due_date=now + timedelta(minutes=4), remind_at=now - timedelta(seconds=1),
                            **row)
    assert Scheduler().fire_due() == 1
    assert Reminder.objects.filter(state=Reminder.FIRED).count() == 0
    assert reminder_events_in_outbox() == []


@pytest.mark.django_db
def test_the_scheduler_knows_how_long_to_sleep(user_factory):
    scheduler = Scheduler(max_sleep_s=30.0)
    assert scheduler.seconds_until_next() == 30.0, "nothing pending: the safety net"
    scheduled_todo(user_factory(username="alice"), reminders_in=(timedelta(seconds=20),))
    assert 15 < scheduler.seconds_until_next() <= 20
    come_due(Reminder.objects.get().todo_id)
    assert scheduler.seconds_until_next() == 0


@pytest.mark.django_db
def test_a_snooze_arms_a_reminder_of_its_own_once(user_factory):
    alice = user_factory(username="alice")
    todo_id = scheduled_todo(alice)
    state = TodoState.objects.get(pk=todo_id)
    until = state.due_date + timedelta(minutes=10)  # after the due date: "-PT10M"
    snoozed = reminder_events.new_envelope(
        event_type=reminder_events.REMINDER_SNOOZED, todo_id=todo_id, user_id=alice.pk, correlation_id="c",
        occurred_at=timezone.now(), data={"dueDate": iso(state.due_date),
                                          "snoozeUntil": iso(until),
                                          "scheduledVersion": state.schedule_version,
                                          "snoozedAt": iso(timezone.now())})
    assert services.snooze_apply(envelope=snoozed)
    assert services.snooze_apply(envelope=snoozed), "a redelivery: the same row"
    reminder = Reminder.objects.get(todo_id=todo_id, reminder_type="-PT10M")
    assert (reminder.remind_at, reminder.state) == (until, Reminder.PENDING)
    Reminder.objects.filter(pk=reminder.pk).update(remind_at=timezone.now())
    Scheduler().fire_due()
    assert Reminder.objects.get(pk=reminder.pk).state == Reminder.FIRED
    services.snooze_apply(envelope=snoozed)
    assert Reminder.objects.get(pk=reminder.pk).state == Reminder.FIRED, "a fired reminder stays fired"


def test_a_thousand_reminders_fire_once_each_under_two_schedulers_killed_again_and_again(roles, notifier, smtp,
                                                                                         user_factory):
    """Two schedulers claim small batches while one or the other is SIGKILLed and restarted: a
    claim either commits (rows fired, events in the outbox) or leaves its rows pending. The
    notification role (never killed here, so no email can fall between an SMTP answer and its
    record) sends one email per reminder."""
    owners = [user_factory(username=f"user{i}", email=f"user{i}@example.test") for i in range(10)]
    now = timezone.now()
    states = [TodoState(owner=owners[i % 10], version=2, title=f"todo {i}", created_at=now, due_date=now,
                        schedule_version=2) for i in range(1000)]
    TodoState.objects.bulk_create(states)
    TodoFacts.objects.bulk_create(TodoFacts(todo_id=state.id, owner_id=state.owner_id, title=f"todo {i}", version=2)
                                  for i, state in enumerate(states))  # what the notification role knows of them
    NotificationPreference.objects.bulk_create(  # emails only: they are what is counted
        NotificationPreference(user=owner, category=REMINDER, channel=IN_APP, enabled=False) for owner in owners)
    start = now + timedelta(seconds=4)  # the schedulers are up by then; the firing spreads over 4 s
    Reminder.objects.bulk_create(
        Reminder(todo_id=state.id, owner_id=state.owner_id, reminder_type="PT1H", due_date=state.due_date,
                 remind_at=start + timedelta(milliseconds=4 * i), scheduled_by=2) for i, state in enumerate(states))
    roles("runrelay")
    notifications = unique("notifications")
    notifier(notifications)
    schedulers = [roles("runscheduler", "--batch-size", "20") for _ in range(2)]
    kills = 0
    fired = Reminder.objects.filter(state=Reminder.FIRED).count
    while Reminder.objects.filter(state=Reminder.PENDING).exists():
        assert kills < 200, "the reminders kept not firing"
        # Kill one while reminders are firing (the next claim is under way), then restart it.
        before = fired()
        wait_until(lambda: fired() > before or not Reminder.objects.filter(state=Reminder.PENDING).exists(),
                   what="reminders to fire")
        victim = schedulers[kills % 2]
        victim.kill()
        victim.wait()
        schedulers[kills % 2] = roles("runscheduler", "--batch-size", "20")
        kills += 1
    assert kills >= 3, "the kills fell while reminders were firing"
    wait_until(lambda: not OutboxEvent.objects.exists(), what="the relay to publish everything")
    published = [reminder_events.read(json.loads(m.value())) for m in consume_to_end(resolve(REMINDER_EVENTS))]
    keys = [(event["data"]["todoId"], event["data"]["reminderType"], event["data"]["dueDate"])
            for event in published if event["eventType"] == reminder_events.REMINDER_DUE]
    assert len(keys) == 1000 and len(set(keys)) == 1000, "exactly one ReminderDue per reminder"
    assert Reminder.objects.filter(state=Reminder.FIRED).count() == 1000
    wait_until(lambda: len(smtp.messages) >= 1000, timeout=120, what="a thousand reminder emails")
    wait_until(lambda: caught_up(notifications, resolve(REMINDER_EVENTS)), what="every ReminderDue handled")
    titles = Counter(email["Subject"].split("“")[1].split("”")[0] for _, email in smtp.messages)
    assert len(titles) == 1000 and set(titles.values()) == {1}, "one email per reminder"


def test_reminders_due_while_no_scheduler_ran_fire_when_one_starts_marked_late(roles, user_factory):
    todo_id = scheduled_todo(user_factory(username="alice"), reminders_in=(timedelta(seconds=1),))
    reminder = Reminder.objects.get(todo_id=todo_id)
    wait_until(lambda: timezone.now() > reminder.remind_at + timedelta(seconds=1), what="its time to pass unseen")
    roles("runscheduler", env={"REMINDER_LATE_AFTER_S": "0.5"})
    wait_until(lambda: Reminder.objects.get(pk=reminder.pk).state == Reminder.FIRED, what="it to fire on start")
    assert Reminder.objects.get(pk=reminder.pk).late
    [event] = reminder_events_in_outbox()
    assert event["data"]["late"] is True
