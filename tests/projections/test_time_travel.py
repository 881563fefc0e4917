"""Time travel: `GET /api/todos/{id}/?version=N` and `?asOf=` answer the todo as it was, folded
from its events; `/events/` says what each event changed. Checked against a fold written here by
hand, independently of the projection's, at random versions."""
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import teammates
from tests.helpers import api_client, wait_until

FIELDS = ("title", "description", "priority", "completed", "assignedTo", "dueDate", "teamId", "deletedAt")


@pytest.fixture
def people(user_factory):
    alice, bob, eve = (user_factory(username=name) for name in ("alice", "bob", "eve"))
    teammates(alice, bob)
    return alice, bob, eve


def by_hand(envelopes: list[dict]) -> dict:
    """The todo after these events, folded the plain way: field by field from each event's data."""
    todo = {}
    for envelope in envelopes:
        data, kind = envelope["data"], envelope["eventType"]
        if kind == "TodoCreated":
            todo = {"title": data["title"], "description": data["description"], "priority": data["priority"],
                    "completed": False, "assignedTo": None, "dueDate": data["dueDate"], "teamId": data["teamId"],
                    "deletedAt": None}
        elif kind == "TodoUpdated":
            todo.update(title=data["title"], description=data["description"])
        elif kind == "TodoPrioritized":
            todo["priority"] = data["priority"]
        elif kind == "TodoAssigned":
            todo["assignedTo"] = data["assignedTo"]
        elif kind == "TodoScheduled":
            todo["dueDate"] = data["dueDate"]
        elif kind == "TodoCompleted":
            todo["completed"] = True
        elif kind == "TodoDeleted":
            todo["deletedAt"] = data["deletedAt"]
    return todo


def same_instant(a: str | None, b: str | None) -> bool:
    from django.utils.dateparse import parse_datetime

    return a == b or (a is not None and b is not None and parse_datetime(a) == parse_datetime(b))


def shown(todo: dict) -> dict:
    return {field: todo[field] for field in FIELDS}


def assert_same(answer: dict, expected: dict, version: int) -> None:
    for field in FIELDS:
        if field in ("dueDate", "deletedAt"):
            assert same_instant(answer[field], expected[field]), (version, field, answer[field], expected[field])
        else:
            assert answer[field] == expected[field], (version, field, answer[field], expected[field])


def a_long_history(client, bob) -> tuple[str, int]:
    """A todo through every kind of command, some twice: (id, its last version)."""
    todo = client.post("/api/todos/", {"title": "v1", "description": "first"}, format="json").json()["id"]
    due = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    steps = [
        ("patch", "", {"title": "renamed", "description": "second"}),
        ("post", "prioritize/", {"priority": "urgent"}),
        ("post", "assign/", {"assignedTo": str(bob.pk)}),
        ("post", "schedule/", {"dueDate": due.isoformat()}),
        ("patch", "", {"title": "renamed again"}),
        ("post", "prioritize/", {"priority": "low"}),
        ("patch", "", {"description": "third"}),
        ("post", "complete/", {}),
    ]
    for method, path, body in steps:
        answer = getattr(client, method)(f"/api/todos/{todo}/{path}", body, format="json")
        assert answer.status_code in (200, 202), answer.content
    version = answer.json()["version"]
    return todo, version


def history_of(client, todo: str) -> list[dict]:
    return client.get(f"/api/todos/{todo}/events/").json()


def test_every_version_is_the_fold_of_its_events_and_the_last_is_the_todo_now(pipeline, people):
    alice, bob, _ = people
    client = api_client(alice)
    todo, last = a_long_history(client, bob)
    wait_until(lambda: client.get(f"/api/todos/{todo}/").json().get("version") == last, what="projected")
    envelopes = [item["event"] for item in history_of(client, todo)]
    assert [e["aggregateVersion"] for e in envelopes] == list(range(1, last + 1))
    versions = list(range(1, last + 1))
    random.Random(7).shuffle(versions)
    for version in versions:
        answer = client.get(f"/api/todos/{todo}/?version={version}")
        assert answer.status_code == 200, answer.content
        assert answer.json()["version"] == version
        assert_same(answer.json(), by_hand(envelopes[:version]), version)
    now = client.get(f"/api/todos/{todo}/").json()
    at_last = client.get(f"/api/todos/{todo}/?version={last}").json()
    assert {k: v for k, v in at_last.items() if k != "deletedAt"} == now, "the last version is the todo as it is"


def test_as_of_an_instant_is_the_todo_after_the_events_that_occurred_by_then(pipeline, people):
    alice, bob, _ = people
    client = api_client(alice)
    todo, last = a_long_history(client, bob)
    wait_until(lambda: len(history_of(client, todo)) == last, what="every event in the history")
    envelopes = [item["event"] for item in history_of(client, todo)]
    for version in (1, 4, last):
        moment = envelopes[version - 1]["occurredAt"]
        answer = client.get(f"/api/todos/{todo}/", {"asOf": moment})
        assert answer.status_code == 200 and answer.json()["version"] == version
    before = client.get(f"/api/todos/{todo}/", {"asOf": "2001-01-01T00:00:00Z"})
    assert before.status_code == 404 and "did not exist then" in before.json()["detail"]


def test_each_event_says_what_it_changed(pipeline, people):
    alice, bob, _ = people
    client = api_client(alice)
    todo, last = a_long_history(client, bob)
    wait_until(lambda: len(history_of(client, todo)) == last, what="every event in the history")
    history = history_of(client, todo)
    created = {c["field"]: (c["before"], c["after"]) for c in history[0]["changes"]}
    assert created["title"] == (None, "v1") and created["priority"] == (None, "medium")
    assert "completed" not in created and "assignedTo" not in created, "a creation lists what it set"
    assert history[1]["changes"] == [{"field": "title", "before": "v1", "after": "renamed"},
                                     {"field": "description", "before": "first", "after": "second"}]
    assert history[3]["changes"] == [{"field": "assignedTo", "before": None, "after": str(bob.pk)}]
    completed = {c["field"]: (c["before"], c["after"]) for c in history[-1]["changes"]}
    assert completed["completed"] == (False, True) and completed["completedAt"][0] is None


def test_a_deleted_todo_can_be_looked_back_at_by_those_who_could_see_it_and_nobody_else(pipeline, people):
    alice, bob, eve = people
    client = api_client(alice)
    todo = client.post("/api/todos/", {"title": "team plan", "teamId": None}, format="json").json()["id"]
    client.post(f"/api/todos/{todo}/assign/", {"assignedTo": str(bob.pk)}, format="json")
    gone = client.delete(f"/api/todos/{todo}/", format="json")
    assert gone.status_code in (202, 204)
    wait_until(lambda: client.get(f"/api/todos/{todo}/").status_code == 404, what="the deletion projected")
    for reader in (alice, bob):  # the owner, and the assignee who saw it
        at = api_client(reader).get(f"/api/todos/{todo}/?version=2")
        assert at.status_code == 200 and at.json()["assignedTo"] == str(bob.pk) and at.json()["deletedAt"] is None
        last = api_client(reader).get(f"/api/todos/{todo}/?version=3").json()
        assert last["deletedAt"] is not None
        assert [c["field"] for c in history_of(api_client(reader), todo)[-1]["changes"]] == ["deletedAt"]
    for call in (f"/api/todos/{todo}/?version=1", f"/api/todos/{todo}/events/"):
        assert api_client(eve).get(call).status_code == 404, "a stranger learns nothing, not even that it existed"
    assert [t["id"] for t in api_client(alice).get("/api/todos/?deleted=true").json()["results"]] == [todo]
    assert api_client(eve).get("/api/todos/?deleted=true").json()["results"] == [], "nor from the deleted list"


@pytest.mark.parametrize("query, status", [
    ("version=0", 400), ("version=abc", 400), ("version=99", 404), ("version=2147483648", 400),
    ("asOf=yesterday", 400), ("asOf=99999-01-01T00:00:00Z", 400), ("version=1&asOf=2026-01-01T00:00:00Z", 400),
])
def test_bad_time_travel_is_refused_plainly(pipeline, people, query, status):
    client = api_client(people[0])
    todo = client.post("/api/todos/", {"title": "t"}, format="json").json()["id"]
    answer = client.get(f"/api/todos/{todo}/?{query}")
    assert answer.status_code == status, answer.content
