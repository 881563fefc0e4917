"""Reminders end to end, on the real broker, database, SMTP server and clock: the API schedules,
`runconsumer reminders` keeps the due table, `runscheduler` fires, the relay publishes
ReminderDue, `runconsumer notifications` emails and pushes it and publishes ReminderSent; a
refusing SMTP server walks the retry topics, and one that never accepts ends in the DLQ."""
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from apps.notifications.models import Notification
from apps.reminders.models import Reminder
from apps.todos import reminder_events
from apps.todos.events import iso
from apps.todos.models import OutboxEvent
from polystack.ops.models import DeadLetter
from polystack.streaming.topics import REMINDER_EVENTS, REMINDER_EVENTS_DLQ, resolve, retry_topic
from tests.helpers import api_client, consume_to_end, unique, wait_until


def ahead(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def scheduled(client, title: str, *reminders_in: float, due_in: float = 3600) -> str:
    """A todo with reminders `reminders_in` seconds from now. A reminder already past when the
    API checks it is refused (400): on a loaded machine a request took 5 s, so a refusal of that
    kind is asked again with the times from then (a refused request made nothing)."""
    for _ in range(3):
        answer = client.post("/api/todos/", {"title": title, "dueDate": iso(ahead(due_in)),
                                             "reminderTimes": [iso(ahead(s)) for s in reminders_in]}, format="json")
        if answer.status_code != 400 or b"has passed" not in answer.content:
            break
    assert answer.status_code == 202, answer.content
    return answer.json()["id"]


def published(event_type: str, topic: str = REMINDER_EVENTS) -> list[dict]:
    """The events of that type on the topic, once the relay has published everything."""
    wait_until(lambda: not OutboxEvent.objects.exists(), what="the relay to publish everything")
    found = [reminder_events.read(json.loads(m.value())) for m in consume_to_end(resolve(topic))]
    return [event for event in found if event["eventType"] == event_type]


@pytest.fixture
def alice(roles, notifier, user_factory, settings):
    """Every role of the reminder flow running; alice's API client."""
    settings.READ_YOUR_WRITES_TIMEOUT_S = 0  # no projection runs: commands answer 202 at once
    roles("runrelay")
    roles("runconsumer", "reminders", "--group-id", unique("reminders"))
    roles("runscheduler")
    notifier()
    return api_client(user_factory(username="alice", email="alice@example.test"))


@pytest.fixture
def alice_warm(alice, smtp):
    """The same, proved up by a first reminder that reached the inbox (before anything is timed)."""
    scheduled(alice, "Warm up", 3)
    wait_until(lambda: smtp.messages, what="the first reminder's email: every role is up")
    smtp.messages.clear()
    smtp.received_at.clear()
    return alice


def test_reminders_fire_on_time_once_cancelled_ones_never_and_a_snoozed_one_again(alice_warm, smtp):
    alice = alice_warm
    kept = scheduled(alice, "Pay the rent", 3, 5)
    completed = scheduled(alice, "Completed first", 3)
    deleted = scheduled(alice, "Deleted first", 3)
    moved = scheduled(alice, "Moved", 3)
    assert alice.post(f"/api/todos/{completed}/complete/", format="json").status_code == 202
    assert alice.delete(f"/api/todos/{deleted}/").status_code == 202
    rescheduled = alice.post(f"/api/todos/{moved}/schedule/", {"dueDate": iso(ahead(7200)),
                                                              "reminderTimes": [iso(ahead(6))]}, format="json")
    assert rescheduled.status_code == 202, rescheduled.content

    wait_until(lambda: len(smtp.messages) == 3, what="three reminder emails")
    wait_until(lambda: not Reminder.objects.filter(state=Reminder.PENDING).exists(), what="nothing left pending")
    subjects = sorted(email["Subject"].split("”")[0].split("“")[1] for _, email in smtp.messages)
    assert subjects == ["Moved", "Pay the rent", "Pay the rent"]
    for todo in (completed, deleted):
        assert set(Reminder.objects.filter(todo_id=todo).values_list("state", flat=True)) == {"cancelled"}
    assert set(Reminder.objects.filter(todo_id=moved).values_list("state", flat=True)) == {"cancelled", "fired"}

    due = published(reminder_events.REMINDER_DUE)
    mine = [event for event in due if event["data"]["todoId"] in (kept, moved)]
    assert len(mine) == 3 and len({(e["data"]["todoId"], e["data"]["reminderType"]) for e in mine}) == 3
    sent = Counter((e["data"]["todoId"], e["data"]["reminderType"], e["data"]["channel"])
                   for e in published(reminder_events.REMINDER_SENT) if e["data"]["todoId"] in (kept, moved))
    assert sorted(sent.values()) == [1] * 6, "one ReminderSent per reminder and channel (email, in-app)"

    # On time: each email within a second of its reminder time.
    fired = {r.remind_at.timestamp() for r in Reminder.objects.filter(todo_id__in=[kept, moved], state="fired")}
    for received in smtp.received_at:
        assert min(received - at for at in fired if at <= received) < 1.0, "an email more than 1 s after its time"

    # Snoozed from its email's link's todo: it fires again, once, at the new time.
    body = next(email for _, email in smtp.messages if "Moved" in email["Subject"]).get_body(("plain",)).get_content()
    assert "/reminders/snooze/" in body, "the email carries its snooze link"
    until = ahead(3)
    answer = alice.post(f"/api/todos/{moved}/reminders/snooze/", {"until": iso(until)}, format="json")
    assert answer.status_code == 202, answer.content
    wait_until(lambda: len(smtp.messages) == 4, what="the snoozed reminder's email")
    assert smtp.received_at[3] - until.timestamp() < 1.0, "on time"
    snoozed = Reminder.objects.get(todo_id=moved, remind_at=until)
    assert snoozed.state == Reminder.FIRED and snoozed.reminder_type.startswith("PT")
    assert len([e for e in published(reminder_events.REMINDER_DUE) if e["data"]["todoId"] == moved]) == 2


def test_a_refusing_mail_server_walks_the_retry_topics_and_the_reminder_goes_out_once_it_accepts(alice, smtp):
    smtp.refusing = True
    todo = scheduled(alice, "Call the bank", 3)
    email = lambda: Notification.objects.filter(todo_id=todo, channel="email").first()  # noqa: E731
    # Attempts: the first, then from retry-1 (0.1 s later) and retry-2 (0.5 s); retry-3 waits 3 s.
    # The server's count, not the row's: a row counts its attempt before the server answers it.
    wait_until(lambda: smtp.refused >= 3, what="three refused attempts")
    smtp.refusing = False
    wait_until(lambda: email().status == "sent", timeout=30, what="the email sent from the last retry topic")
    assert len(smtp.messages) == 1 and smtp.refused == 3
    assert Notification.objects.get(todo_id=todo, channel="in_app").attempts == 1, "in-app went out at once"

    waits = []
    for level in (1, 2, 3):
        [retried] = consume_to_end(resolve(retry_topic(REMINDER_EVENTS, level)))
        headers = dict(retried.headers())
        assert headers["retry.attempts"] == str(level).encode()
        waits.append(int(headers["retry.not-before"]) - retried.timestamp()[1])
    assert waits[0] < waits[1] < waits[2], f"growing delays: {waits} ms"
    channels = [e["data"]["channel"] for e in published(reminder_events.REMINDER_SENT) if e["data"]["todoId"] == todo]
    assert sorted(channels) == ["email", "in_app"]
    assert published(reminder_events.REMINDER_DUE, REMINDER_EVENTS_DLQ) == []


def test_a_reminder_the_mail_server_never_accepts_lands_in_the_dlq_and_a_redrive_delivers_it_once(
        alice, smtp, roles, admin_client):
    smtp.refusing = True
    todo = scheduled(alice, "Renew the passport", 3)
    [letter] = wait_until(lambda: consume_to_end(resolve(REMINDER_EVENTS_DLQ)), timeout=30, what="the dead letter")
    headers = {key: value.decode() for key, value in letter.headers()}
    assert headers["dlq.original.topic"] == resolve(REMINDER_EVENTS)
    assert (headers["dlq.attempts"], headers["dlq.error.class"]) == ("4", "DeliveryFailedError")
    assert "451" in headers["dlq.error.message"]
    event = reminder_events.read(json.loads(letter.value()))
    assert (event["eventType"], event["data"]["todoId"]) == (reminder_events.REMINDER_DUE, todo)
    assert Notification.objects.get(todo_id=todo, channel="email").status == "pending"
    assert smtp.messages == [] and smtp.refused == 4

    # Triage: indexed, then redriven from the admin (twice: published once) once the server accepts.
    roles("runconsumer", "dlq-index", "--group-id", unique("dlq"))
    parked = wait_until(lambda: DeadLetter.objects.filter(original_topic=resolve(REMINDER_EVENTS)).first(),
                        what="the letter indexed")
    smtp.refusing = False
    for _ in range(2):
        admin_client.post("/admin/ops/deadletter/", {"action": "redrive_to_original", "_selected_action": [parked.id]})
    wait_until(lambda: len(smtp.messages) == 1, what="the redriven reminder's email")
    wait_until(lambda: Notification.objects.get(todo_id=todo, channel="email").status == "sent", what="marked sent")
    sent = [e["data"]["channel"] for e in published(reminder_events.REMINDER_SENT) if e["data"]["todoId"] == todo]
    assert sorted(sent) == ["email", "in_app"], "each channel's ReminderSent once: in-app before, email now"
    assert len(smtp.messages) == 1
    assert DeadLetter.objects.get(pk=parked.pk).state == DeadLetter.REDRIVEN


@pytest.mark.django_db
def test_a_forged_reminder_due_tells_nobody_anything(user_factory):
    """Anyone who can write to reminder-events can send a ReminderDue: naming someone else's
    todo, or a todo nobody knows, it makes no notification (the title stays with its owner)."""
    from apps.notifications import services as notifications
    from apps.notifications.models import TodoFacts

    alice, mallory = user_factory(username="alice"), user_factory(username="mallory", email="m@example.test")
    todo_id = "0b7c6a52-2d8e-4f7e-9b1a-3f5e8e9c1d2a"
    TodoFacts.objects.create(todo_id=todo_id, owner_id=alice.pk, title="Alice's secret", version=1)
    for user_id, todo in ((mallory.pk, todo_id), (mallory.pk, "9b7c6a52-2d8e-4f7e-9b1a-3f5e8e9c1d2a")):
        forged = reminder_events.new_envelope(
            event_type=reminder_events.REMINDER_DUE, todo_id=todo, user_id=user_id, correlation_id="c",
            occurred_at=ahead(0), data={"reminderType": "PT1H", "dueDate": iso(ahead(3600)),
                                        "remindAt": iso(ahead(0)), "late": False})
        assert notifications.remind(forged) == []
    assert not Notification.objects.exists()
