"""Teams: the API, who sees and changes team todos, and the metadata events carry."""
import json

import pytest

from polystack.streaming.topics import TODO_EVENTS, resolve
from tests.helpers import api_client, consume_all, wait_until


@pytest.fixture
def people(user_factory):
    return {name: user_factory(username=name) for name in ("alice", "bob", "carol")}


def join(owner, member, team_id: str, username: str) -> None:
    """The owner invites, the member accepts."""
    assert owner.post(f"/api/teams/{team_id}/members/", {"username": username}, format="json").status_code == 202
    [invitation] = [i for i in member.get("/api/invitations/").json() if i["teamId"] == team_id]
    assert member.post(f"/api/invitations/{invitation['id']}/accept/").status_code == 200


def test_nobody_joins_a_team_without_accepting_and_only_the_owner_invites_or_removes(db, people):
    alice, bob, carol = (api_client(people[n]) for n in ("alice", "bob", "carol"))
    team = alice.post("/api/teams/", {"name": "Platform"}, format="json")
    assert team.status_code == 201
    team_id = team.json()["id"]
    assert [m["username"] for m in team.json()["members"]] == ["alice"]

    invited = alice.post(f"/api/teams/{team_id}/members/", {"username": "bob"}, format="json")
    assert invited.status_code == 202 and "bob" not in json.dumps(invited.json()), "no names come back"
    assert bob.get("/api/teams/").json() == [], "invited is not a member"
    for nobody in ({"username": "nobody"}, {"userId": "999999"}):
        assert alice.post(f"/api/teams/{team_id}/members/", nobody, format="json").json() == invited.json(), \
            "the same answer whether the user exists or not: inviting enumerates nobody"
    assert alice.post(f"/api/teams/{team_id}/members/", {"userId": "²"}, format="json").status_code == 400
    [invitation] = bob.get("/api/invitations/").json()
    assert (invitation["teamName"], invitation["invitedBy"]) == ("Platform", "alice")
    assert carol.post(f"/api/invitations/{invitation['id']}/accept/").status_code == 404, "not carol's to accept"
    assert bob.post(f"/api/invitations/{invitation['id']}/accept/").status_code == 200
    assert bob.get("/api/teams/").json()[0]["id"] == team_id
    assert bob.get("/api/invitations/").json() == []

    assert bob.post(f"/api/teams/{team_id}/members/", {"userId": str(people["carol"].pk)},
                    format="json").status_code == 403, "members do not invite"
    alice.post(f"/api/teams/{team_id}/members/", {"username": "carol"}, format="json")
    [declined] = carol.get("/api/invitations/").json()
    assert carol.post(f"/api/invitations/{declined['id']}/decline/").status_code == 204
    assert carol.get(f"/api/teams/{team_id}/").status_code == 404, "outsiders do not see the team"
    assert carol.get("/api/teams/").json() == []
    assert alice.delete(f"/api/teams/{team_id}/members/{people['alice'].pk}/").status_code == 400
    assert alice.post(f"/api/teams/{team_id}/leave/").status_code == 400, "the owner cannot leave"
    assert alice.delete(f"/api/teams/{team_id}/members/{people['bob'].pk}/").status_code == 204
    assert bob.get(f"/api/teams/{team_id}/").status_code == 404
    assert alice.post("/api/teams/", {"name": ""}, format="json").json() == {"name": ["This field may not be blank."]}


def test_a_full_team_takes_nobody_more(db, people, settings):
    from apps.todos.models import Team

    alice, bob = api_client(people["alice"]), api_client(people["bob"])
    team_id = alice.post("/api/teams/", {"name": "Tiny"}, format="json").json()["id"]
    alice.post(f"/api/teams/{team_id}/members/", {"username": "bob"}, format="json")
    [invitation] = bob.get("/api/invitations/").json()
    Team.MAX_MEMBERS, limit = 1, Team.MAX_MEMBERS
    try:
        assert bob.post(f"/api/invitations/{invitation['id']}/accept/").status_code == 409
    finally:
        Team.MAX_MEMBERS = limit


def test_a_personal_todo_is_assigned_only_to_someone_who_shares_a_team(db, people, settings):
    settings.READ_YOUR_WRITES_TIMEOUT_S = 0
    alice, bob = api_client(people["alice"]), api_client(people["bob"])
    todo = alice.post("/api/todos/", {"title": "mine"}, format="json").json()["id"]
    refused = alice.post(f"/api/todos/{todo}/assign/", {"assignedTo": str(people["bob"].pk)}, format="json")
    assert refused.status_code == 400 and refused.json() == {"assignedTo": ["not someone you share a team with"]}
    team_id = alice.post("/api/teams/", {"name": "Pair"}, format="json").json()["id"]
    join(alice, bob, team_id, "bob")
    assert alice.post(f"/api/todos/{todo}/assign/", {"assignedTo": str(people["bob"].pk)},
                      format="json").status_code in (200, 202)


def test_a_member_who_goes_is_unassigned_from_the_teams_todos_by_events(pipeline, people):
    """Removed or leaving, a former member no longer sees, hears of or completes team todos."""
    alice, bob, carol = (api_client(people[n]) for n in ("alice", "bob", "carol"))
    team_id = alice.post("/api/teams/", {"name": "Platform"}, format="json").json()["id"]
    join(alice, bob, team_id, "bob")
    join(alice, carol, team_id, "carol")
    todos = [alice.post("/api/todos/", {"title": f"t{n}", "teamId": team_id}, format="json").json()["id"]
             for n in range(2)]
    for todo, who in zip(todos, ("bob", "carol")):
        assert alice.post(f"/api/todos/{todo}/assign/", {"assignedTo": str(people[who].pk)},
                          format="json").status_code == 200

    assert alice.delete(f"/api/teams/{team_id}/members/{people['bob'].pk}/").status_code == 204
    assert carol.post(f"/api/teams/{team_id}/leave/").status_code == 204
    for todo, who, client in ((todos[0], "bob", bob), (todos[1], "carol", carol)):
        wait_until(lambda: alice.get(f"/api/todos/{todo}/").json()["assignedTo"] is None, what=f"{who} unassigned")
        assert client.get(f"/api/todos/{todo}/").status_code == 404
        assert client.get(f"/api/todos/{todo}/events/").status_code == 404
        assert client.post(f"/api/todos/{todo}/complete/", format="json").status_code == 404
    unassigned = [json.loads(m.value()) for m in consume_all(resolve(TODO_EVENTS), 6)][-2:]
    assert [(e["eventType"], e["schemaVersion"], e["data"]["assignedTo"]) for e in unassigned] == [
        ("TodoAssigned", 2, None)] * 2
    assert str(people["bob"].pk) in unassigned[0]["metadata"]["affectedUsers"], "the former assignee sees it go"
    assert unassigned[0]["metadata"]["notificationRequired"] is False


def test_team_members_see_team_todos_and_events_name_everyone_affected(pipeline, people):
    alice, bob, carol = (api_client(people[n]) for n in ("alice", "bob", "carol"))
    team_id = alice.post("/api/teams/", {"name": "Platform"}, format="json").json()["id"]
    join(alice, bob, team_id, "bob")

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
