"""The todo API end to end: commands -> outbox -> relay -> Kafka -> projection -> reads.

The relay and the projection run as real processes (`runrelay`, `runconsumer projections`)
on this test's own topics and the test database.
"""
import json
from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.todos.models import OutboxEvent, TodoState
from polystack.streaming.topics import TODO_EVENTS, resolve
from tests.factories import teammates
from tests.helpers import api_client, consume_all, consume_to_end, wait_until


@pytest.fixture
def alice(user_factory):
    return user_factory(username="alice")


@pytest.fixture
def bob(user_factory, alice):
    bob = user_factory(username="bob")
    teammates(alice, bob)  # alice may assign him her todos
    return bob


def create(client, **body):
    response = client.post("/api/todos/", {"title": "Write the report", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_token_auth_and_a_created_todo_read_back(pipeline, alice):
    client = APIClient()
    token = client.post("/api/auth/token/", {"username": "alice", "password": "correct-horse-battery"}, format="json")
    assert token.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")

    todo = create(client, description="by Friday", priority="high")

    assert todo["title"] == "Write the report" and todo["priority"] == "high"
    assert todo["userId"] == str(alice.pk) and todo["version"] == 1 and todo["completed"] is False
    assert client.get(f"/api/todos/{todo['id']}/").json() == todo
    listing = client.get("/api/todos/").json()
    assert listing["count"] == 1 and listing["results"] == [todo]


def test_each_command_publishes_exactly_its_events_in_order_on_one_partition(pipeline, alice, bob):
    client = api_client(alice)
    todo = create(client)
    url = f"/api/todos/{todo['id']}/"
    assert client.patch(url, {"description": "more"}, format="json").status_code == 200
    assert client.post(url + "prioritize/", {"priority": "urgent"}, format="json").status_code == 200
    assert client.post(url + "assign/", {"assignedTo": str(bob.pk)}, format="json").status_code == 200
    assert client.post(url + "complete/", format="json").status_code == 200
    assert client.delete(url).status_code == 204

    messages = consume_all(resolve(TODO_EVENTS), 6)
    assert len(messages) == 6
    envelopes = [json.loads(m.value()) for m in messages]
    assert [e["eventType"] for e in envelopes] == [
        "TodoCreated", "TodoUpdated", "TodoPrioritized", "TodoAssigned", "TodoCompleted", "TodoDeleted"]
    assert [e["aggregateVersion"] for e in envelopes] == [1, 2, 3, 4, 5, 6]
    assert len({m.partition() for m in messages}) == 1
    assert {m.key() for m in messages} == {str(alice.pk).encode()}
    for message, envelope in zip(messages, envelopes):
        headers = dict(message.headers())
        assert headers["eventType"] == envelope["eventType"].encode()
        assert headers["schemaVersion"] == str(envelope["schemaVersion"]).encode()
        assert headers["correlationId"] == envelope["correlationId"].encode()
        assert headers["eventId"] == envelope["eventId"].encode()  # for the consumers' log lines
        assert envelope["userId"] == str(alice.pk) and envelope["causationId"] is None
    assert envelopes[1]["data"] == {"todoId": todo["id"], "title": "Write the report", "description": "more",
                                    "updatedAt": envelopes[1]["data"]["updatedAt"]}
    assert envelopes[3]["data"]["assignedTo"] == str(bob.pk)
    wait_until(lambda: not OutboxEvent.objects.exists(), what="the relay done with the outbox")
    assert len(consume_to_end(resolve(TODO_EVENTS))) == 6, "nothing beyond the six"


def test_history_and_read_model_follow_the_commands(pipeline, alice, bob):
    client = api_client(alice)
    todo = create(client)
    url = f"/api/todos/{todo['id']}/"
    assigned = client.post(url + "assign/", {"assignedTo": str(bob.pk)}, format="json").json()
    assert assigned["assignedTo"] == str(bob.pk) and assigned["version"] == 2
    completed = api_client(bob).post(url + "complete/", format="json")
    assert completed.status_code == 200, "an assignee may complete"
    assert completed.json()["completed"] is True and completed.json()["completedAt"]

    history = [item["event"] for item in client.get(url + "events/").json()]
    assert [e["eventType"] for e in history] == ["TodoCreated", "TodoAssigned", "TodoCompleted"]
    assert [e["aggregateVersion"] for e in history] == [1, 2, 3]
    assert client.get("/api/todos/?completed=true").json()["count"] == 1
    assert client.get("/api/todos/?completed=false").json()["count"] == 0
    assert api_client(bob).get(f"/api/todos/?assignedTo={bob.pk}").json()["count"] == 1


def test_field_errors_name_each_field(pipeline, alice):
    client = api_client(alice)
    response = client.post("/api/todos/", {"title": "", "priority": "someday", "colour": "red"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"colour"}, "unknown fields are refused first"
    response = client.post("/api/todos/", {"title": "", "priority": "someday"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"title", "priority"}
    todo = create(client)
    response = client.post(f"/api/todos/{todo['id']}/assign/", {"assignedTo": "999999"}, format="json")
    assert response.status_code == 400 and "assignedTo" in response.json()
    assert client.get("/api/todos/?page_size=1001").status_code == 400
    assert client.get("/api/todos/?priority=whenever").status_code == 400


def test_state_and_version_conflicts_answer_409(pipeline, alice):
    client = api_client(alice)
    todo = create(client)
    url = f"/api/todos/{todo['id']}/"
    stale = client.patch(url, {"title": "New", "expectedVersion": 5}, format="json")
    assert stale.status_code == 409 and stale.json()["currentVersion"] == 1
    assert client.patch(url, {"title": "New", "expectedVersion": 1}, format="json").status_code == 200
    assert client.post(url + "complete/", format="json").status_code == 200
    again = client.post(url + "complete/", format="json")
    assert again.status_code == 409 and "already completed" in again.json()["detail"]
    assert client.delete(url).status_code == 204
    gone = client.patch(url, {"title": "Zombie"}, format="json")
    assert gone.status_code == 409 and "deleted" in gone.json()["detail"]
    assert client.get(url).status_code == 404, "deleted todos are not shown"
    assert TodoState.objects.get(id=todo["id"]).version == 4, "refused commands emitted nothing"


def test_a_user_can_neither_read_nor_change_another_users_todo(pipeline, alice, bob, user_factory):
    todo = create(api_client(alice))
    url = f"/api/todos/{todo['id']}/"
    mallory = api_client(user_factory(username="mallory"))
    assert mallory.get(url).status_code == 404
    assert mallory.get(url + "events/").status_code == 404
    assert mallory.get("/api/todos/").json()["count"] == 0
    for method, path, body in [
        ("patch", url, {"title": "mine"}), ("delete", url, None), ("post", url + "complete/", None),
        ("post", url + "assign/", {"assignedTo": str(bob.pk)}), ("post", url + "prioritize/", {"priority": "low"}),
    ]:
        response = getattr(mallory, method)(path, body, format="json")
        assert response.status_code == 404, (method, path, response.content)
    anonymous = APIClient()
    assert anonymous.get("/api/todos/").status_code == 401
    assert anonymous.post("/api/todos/", {"title": "x"}, format="json").status_code == 401

    # An assignee sees the todo and may complete it, but not change it otherwise.
    api_client(alice).post(url + "assign/", {"assignedTo": str(bob.pk)}, format="json")
    assert api_client(bob).get(url).status_code == 200
    assert api_client(bob).patch(url, {"title": "mine"}, format="json").status_code == 403
    assert TodoState.objects.get(id=todo["id"]).title == "Write the report"


def test_without_a_projection_commands_answer_202_with_the_url(roles, alice, settings):
    roles("runrelay")
    settings.READ_YOUR_WRITES_TIMEOUT_S = 0.2
    response = api_client(alice).post("/api/todos/", {"title": "Later"}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["version"] == 1 and body["url"].endswith(f"/api/todos/{body['id']}/")
    assert response["Location"] == body["url"]


def test_openapi_schema_describes_the_api(alice_client):
    assert APIClient().get("/api/schema/").status_code == 401, "for signed-in users only"
    response = alice_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert {"/api/todos/", "/api/todos/{id}/", "/api/todos/{id}/complete/", "/api/todos/{id}/events/"} <= set(paths)


def test_a_todos_history_comes_in_pages(pipeline, alice):
    client = api_client(alice)
    todo = client.post("/api/todos/", {"title": "t"}, format="json").json()["id"]
    for n in range(4):
        assert client.patch(f"/api/todos/{todo}/", {"title": f"t{n}"}, format="json").status_code == 200
    first = client.get(f"/api/todos/{todo}/events/?limit=2")
    assert [e["event"]["aggregateVersion"] for e in first.json()] == [1, 2]
    assert first["Link"].endswith(f'/api/todos/{todo}/events/?afterVersion=2&limit=2>; rel="next"')
    last = client.get(f"/api/todos/{todo}/events/?afterVersion=4&limit=2")
    assert [e["event"]["aggregateVersion"] for e in last.json()] == [5] and "Link" not in last
    assert client.get(f"/api/todos/{todo}/events/?limit=5000").status_code == 400


def test_a_schedule_sets_the_due_date_and_reminders_and_replaces_the_one_before(pipeline, alice, bob):
    client = api_client(alice)
    due = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    todo = client.post("/api/todos/", {"title": "Pay the rent", "dueDate": due.isoformat()}, format="json").json()
    assert todo["version"] == 2, "a due date given at creation is scheduled at once"
    assert todo["reminderTimes"] == [iso(due - timedelta(days=1)), iso(due - timedelta(hours=1))]
    orphan = client.post("/api/todos/", {"title": "x", "reminderTimes": [due.isoformat()]}, format="json")
    assert orphan.status_code == 400 and "reminderTimes" in orphan.json(), "no reminders without a due date"
    url = f"/api/todos/{todo['id']}/schedule/"

    at = [due - timedelta(minutes=10)]
    answer = client.post(url, {"dueDate": due.isoformat(), "reminderTimes": [m.isoformat() for m in at],
                               "expectedVersion": 2}, format="json")
    assert answer.status_code == 200 and answer.json()["reminderTimes"] == [iso(at[0])]
    cleared = client.post(url, {"dueDate": None}, format="json").json()
    assert (cleared["dueDate"], cleared["reminderTimes"], cleared["version"]) == (None, [], 4)
    history = [item["event"] for item in client.get(f"/api/todos/{todo['id']}/events/").json()]
    assert [e["eventType"] for e in history] == ["TodoCreated", "TodoScheduled", "TodoScheduled", "TodoScheduled"]
    assert history[1]["metadata"]["category"] == "schedule"

    for body, field in [
        ({"dueDate": "yesterday"}, "dueDate"),
        ({"dueDate": "0001-01-01T00:00:00Z"}, "dueDate"),  # a day before it does not exist
        ({"dueDate": due.isoformat(), "reminderTimes": ["2000-01-01T00:00:00Z"]}, "reminderTimes"),
        ({"dueDate": due.isoformat(), "reminderTimes": [(due + timedelta(hours=1)).isoformat()]}, "reminderTimes"),
        ({"dueDate": None, "reminderTimes": [due.isoformat()]}, "reminderTimes"),
        ({"dueDate": due.isoformat(), "reminderTimes": "soon"}, "reminderTimes"),
        ({}, "dueDate"),
    ]:
        refused = client.post(url, body, format="json")
        assert refused.status_code == 400 and field in refused.json(), (body, refused.json())
    assert client.post(url, {"dueDate": None, "expectedVersion": 1}, format="json").status_code == 409
    assert api_client(bob).post(url, {"dueDate": None}, format="json").status_code == 404, "not bob's to see"
    assert client.post(f"/api/todos/{todo['id']}/complete/", format="json").status_code == 200
    assert client.post(url, {"dueDate": due.isoformat()}, format="json").status_code == 409, "nothing to remind of"


def iso(moment) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
