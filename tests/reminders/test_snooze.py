"""Snooze: `POST /api/todos/{id}/reminders/snooze/` and the reminder email's signed link, which
expires and works once. Both write ReminderSnoozed to the outbox (reminder-events)."""
import json
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.test import Client

from apps.notifications import services as notification_services
from apps.notifications.models import EMAIL, REMINDER, Notification
from apps.todos import reminder_events
from apps.todos.events import iso
from apps.todos.models import OutboxEvent, TodoState
from polystack.streaming.topics import REMINDER_EVENTS, resolve
from tests.factories import teammates
from tests.helpers import api_client


def snoozes() -> list[dict]:
    rows = OutboxEvent.objects.filter(topic=resolve(REMINDER_EVENTS)).order_by("id")
    return [reminder_events.read(json.loads(row.payload)) for row in rows]


@pytest.fixture
def todo(user_factory, settings):
    settings.READ_YOUR_WRITES_TIMEOUT_S = 0  # no projection runs: commands answer 202 at once
    alice = user_factory(username="alice", email="alice@example.test")
    client = api_client(alice)
    due = datetime.now(UTC) + timedelta(days=1)
    answer = client.post("/api/todos/", {"title": "Dentist", "dueDate": iso(due)}, format="json")
    assert answer.status_code in (201, 202), answer.content
    return {"owner": alice, "client": client, "id": answer.json()["id"], "due": due}


@pytest.mark.django_db
def test_the_owner_snoozes_by_minutes_or_until_a_moment(todo):
    url = f"/api/todos/{todo['id']}/reminders/snooze/"
    answer = todo["client"].post(url, {"minutes": 30}, format="json")
    assert answer.status_code == 202, answer.content
    until = datetime.fromisoformat(answer.json()["snoozeUntil"])
    assert timedelta(minutes=29) < until - datetime.now(UTC) <= timedelta(minutes=30)
    moment = datetime.now(UTC) + timedelta(hours=3)
    assert todo["client"].post(url, {"until": iso(moment)}, format="json").status_code == 202
    first, second = snoozes()
    state = TodoState.objects.get(pk=todo["id"])
    assert first["eventType"] == reminder_events.REMINDER_SNOOZED and first["userId"] == str(todo["owner"].pk)
    assert first["data"]["scheduledVersion"] == state.schedule_version == 2
    assert first["data"]["dueDate"] == iso(todo["due"])
    assert datetime.fromisoformat(second["data"]["snoozeUntil"]) == moment
    assert state.version == 2, "a snooze does not change the todo"


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"minutes": 5, "until": "2030-01-01T00:00:00Z"}, {"minutes": 0},
                                  {"minutes": 7 * 24 * 60 + 1}, {"minutes": "soon"}, {"until": "yesterday"},
                                  {"until": "2001-01-01T00:00:00Z"}, {"until": "9999-12-31T00:00:00Z"},
                                  {"minutes": 5, "extra": 1}, ["minutes", 5]])
def test_bad_snoozes_are_refused_with_400(todo, body):
    answer = todo["client"].post(f"/api/todos/{todo['id']}/reminders/snooze/", body, format="json")
    assert answer.status_code == 400, (body, answer.content)
    assert snoozes() == []


@pytest.mark.django_db
def test_only_the_owner_snoozes_a_scheduled_open_todo(todo, user_factory):
    url = f"/api/todos/{todo['id']}/reminders/snooze/"
    mallory, teammate = user_factory(username="mallory"), user_factory(username="teammate")
    assert api_client(mallory).post(url, {"minutes": 5}, format="json").status_code == 404, "not theirs to see"
    teammates(todo["owner"], teammate)
    TodoState.objects.filter(pk=todo["id"]).update(team=todo["owner"].owned_teams.get())
    assert api_client(teammate).post(url, {"minutes": 5}, format="json").status_code == 403, "seen, not theirs"
    assert Client().post(url, {"minutes": 5}).status_code == 401
    assert todo["client"].post(f"/api/todos/{uuid.uuid4()}/reminders/snooze/", {"minutes": 5},
                               format="json").status_code == 404

    unscheduled = todo["client"].post("/api/todos/", {"title": "Someday"}, format="json").json()["id"]
    assert todo["client"].post(f"/api/todos/{unscheduled}/reminders/snooze/", {"minutes": 5},
                               format="json").status_code == 409, "no due date"
    todo["client"].post(f"/api/todos/{todo['id']}/complete/", format="json")
    assert todo["client"].post(url, {"minutes": 5}, format="json").status_code == 409
    assert snoozes() == []


def reminder_email(todo) -> tuple[Notification, str]:
    email = Notification.objects.create(recipient=todo["owner"], event_id=uuid.uuid4(), event_type="ReminderDue",
                                        category=REMINDER, channel=EMAIL, todo_id=todo["id"], subject="s", body="b")
    link = notification_services.snooze_link(event_id=str(email.event_id), recipient_id=todo["owner"].pk)
    return email, urlsplit(link).path.split("/")[-2]


@pytest.mark.django_db
def test_the_email_link_shows_a_button_and_snoozes_once(todo):
    email, token = reminder_email(todo)
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(f"/reminders/snooze/{token}/")
    assert page.status_code == 200 and b"Snooze</button>" in page.content
    assert snoozes() == [], "opening the link (a mail scanner does) snoozes nothing"
    csrf = browser.cookies["csrftoken"].value
    done = browser.post(f"/reminders/snooze/{token}/", {"csrfmiddlewaretoken": csrf})
    assert done.status_code == 200 and b"reminded again" in done.content
    [snoozed] = snoozes()
    until = datetime.fromisoformat(snoozed["data"]["snoozeUntil"])
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)
    email.refresh_from_db()
    assert email.snoozed_at is not None
    again = browser.post(f"/reminders/snooze/{token}/", {"csrfmiddlewaretoken": csrf})
    assert again.status_code == 410 and len(snoozes()) == 1, "it works once"
    assert browser.get(f"/reminders/snooze/{token}/").status_code == 410


@pytest.mark.django_db
def test_a_forged_an_expired_or_a_refused_link_snoozes_nothing(todo, user_factory):
    _, token = reminder_email(todo)
    browser = Client()
    assert browser.post(f"/reminders/snooze/{token[:-2]}xx/").status_code == 404, "tampered"
    mallory = user_factory(username="mallory")
    forged = notification_services.snooze_link(event_id=str(uuid.uuid4()), recipient_id=mallory.pk)
    assert browser.post(urlsplit(forged).path).status_code == 404, "signed, but for no email of ours"
    with mock.patch("django.core.signing.time.time", return_value=datetime.now(UTC).timestamp() + 3 * 86400):
        assert browser.post(f"/reminders/snooze/{token}/").status_code == 410, "expired after two days"
    todo["client"].post(f"/api/todos/{todo['id']}/complete/", format="json")
    refused = browser.post(f"/reminders/snooze/{token}/")
    assert refused.status_code == 409 and b"completed" in refused.content
    assert snoozes() == []
