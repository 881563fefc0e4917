"""Teams: the API, who sees and changes team todos, and the metadata events carry."""
import json

import pytest

from polystack.streaming.topics import TODO_EVENTS, resolve
from tests.helpers import api_client, consume_all, unique


@pytest.fixture
def pipeline(roles):
    roles("runrelay")
    roles("runconsumer", "projections", "--group-id", unique("projection"))


@pytest.fixture
def people(user_factory):
    return {name: user_factory(username=name) for name in ("alice", "bob", "carol")}


def test_the_team_api_lets_only_the_owner_change_members(db, people):
    alice, bob, carol = (api_client(people[n]) for n in ("alice", "bob", "carol"))
    team = alice.post("/api/teams/", {"name": "Platform"}, format="json")
    assert team.status_code == 201
    team_id = team.json()["id"]
    assert [m["username"] for m in team.json()["members"]] == ["alice"]

    assert alice.post(f"/api/teams/{team_id}/members/", {"username": "bob"}, format="json").status_code == 200
    assert alice.post(f"/api/teams/{team_id}/members/", {"username": "nobody"}, format="json").json() == {
        "username": ["No such user."]}
    assert bob.get("/api/teams/").json()[0]["id"] == team_id
    assert bob.post(f"/api/teams/{team_id}/members/", {"userId": str(people["carol"].pk)},
                    format="json").status_code == 403, "members do not add members"
    assert carol.get(f"/api/teams/{team_id}/").status_code == 404, "outsiders do not see the team"
    assert carol.get("/api/teams/").json() == []
    assert alice.delete(f"/api/teams/{team_id}/members/{people['alice'].pk}/").status_code == 400
    assert alice.delete(f"/api/teams/{team_id}/members/{people['bob'].pk}/").status_code == 204
    assert bob.get(f"/api/teams/{team_id}/").status_code == 404
    assert alice.post("/api/teams/", {"name": ""}, format="json").json() == {"name": ["This field may not be blank."]}


def test_team_members_see_team_todos_and_events_name_everyone_affected(pipeline, people):
    alice, bob, carol = (api_client(people[n]) for n in ("alice", "bob", "carol"))
    team_id = alice.post("/api/teams/", {"name": "Platform"}, format="json").json()["id"]
    alice.post(f"/api/teams/{team_id}/members/", {"username": "bob"}, format="json")

    assert carol.post("/api/todos/", {"title": "x", "teamId": team_id}, format="json").json() == {
        "teamId": ["not a team you are a member of"]}
    created = alice.post("/api/todos/", {"title": "Team work", "teamId": team_id}, format="json")
    assert created.status_code == 201, created.content
    todo = created.json()
    assert todo["teamId"] == team_id

    assert bob.get(f"/api/todos/{todo['id']}/").json()["title"] == "Team work"
    assert [t["id"] for t in bob.get(f"/api/todos/?teamId={team_id}").json()["results"]] == [todo["id"]]
    assert carol.get(f"/api/todos/{todo['id']}/").status_code == 404
    assert bob.post(f"/api/todos/{todo['id']}/complete/", format="json").status_code == 403, "members only see"
    outside = alice.post(f"/api/todos/{todo['id']}/assign/", {"assignedTo": str(people["carol"].pk)}, format="json")
    assert outside.status_code == 400 and outside.json() == {"assignedTo": ["not a member of the todo's team"]}
    assert alice.post(f"/api/todos/{todo['id']}/assign/", {"assignedTo": str(people["bob"].pk)},
                      format="json").status_code == 200
    assert bob.post(f"/api/todos/{todo['id']}/complete/", format="json").status_code == 200, "the assignee may"

    envelopes = [json.loads(m.value()) for m in consume_all(resolve(TODO_EVENTS), 3)]
    team = sorted([str(people["alice"].pk), str(people["bob"].pk)], key=int)
    assert [(e["eventType"], e["metadata"]) for e in envelopes] == [
        ("TodoCreated", {"notificationRequired": False, "affectedUsers": team, "category": "created",
                         "actorId": str(people["alice"].pk)}),
        ("TodoAssigned", {"notificationRequired": True, "affectedUsers": team, "category": "assignment",
                          "actorId": str(people["alice"].pk)}),
        ("TodoCompleted", {"notificationRequired": True, "affectedUsers": team, "category": "completed",
                           "actorId": str(people["bob"].pk)}),
    ]
    assert envelopes[0]["data"]["teamId"] == team_id and envelopes[0]["schemaVersion"] == 3
