"""Live pushes over /ws/todos/ against the real web role (daphne), relay, projection and
realtime consumer, Kafka and Redis."""
import json

import pytest
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed, InvalidStatus

from apps.todos.models import Team
from tests.factories import teammates
from tests.helpers import api_client, unique
from tests.realtime.wsclient import Socket, event_of


def token(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


@pytest.fixture
def live(roles, web):
    roles("runrelay")
    roles("runconsumer", "projections", "--group-id", unique("projection"))
    roles("runconsumer", "realtime", "--group-id", unique("realtime"))
    return web


def create(user, title: str, **extra) -> str:
    answer = api_client(user).post("/api/todos/", {"title": title, **extra}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()["id"]


def closed_with(socket: Socket) -> int:
    """The code the server closes the socket with; frames still queued before it are kept."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            socket.frames.append(json.loads(socket.ws.recv(timeout=10)))
    return closed.value.rcvd.code


def test_sockets_refuse_missing_or_bad_credentials_and_foreign_origins(web, user_factory):
    assert closed_with(Socket(web)) == 4401
    assert closed_with(Socket(web, token="not-a-token")) == 4401
    with pytest.raises(InvalidStatus) as refused:
        Socket(web, token=token(user_factory()), origin="http://evil.example")
    assert refused.value.response.status_code == 403


def test_each_user_receives_only_the_events_of_todos_they_may_see(live, user_factory):
    alice, bob, carol, dave = (user_factory() for _ in range(4))
    team = Team.objects.create(name="core", owner=alice)
    team.members.add(alice, bob)
    teammates(alice, carol, name="pair")  # so that alice may assign carol a personal todo; it holds no todo
    sockets = {user.pk: Socket(live, token=token(user)) for user in (alice, bob, carol, dave)}

    personal = create(alice, "personal")
    shared = create(alice, "shared", teamId=str(team.id))
    assert api_client(alice).post(f"/api/todos/{personal}/assign/", {"assignedTo": str(carol.pk)},
                                  format="json").status_code == 200
    # Once alice saw the last push, every push of the earlier events was sent: markers now
    # arrive after them, and what a socket got before its marker is all it will ever get.
    sockets[alice.pk].read_until(event_of(personal, "TodoAssigned"), what="alice's last event")
    markers = {user.pk: create(user, "marker") for user in (alice, bob, carol, dave)}
    got = {}
    for user_id, socket in sockets.items():
        socket.read_until(event_of(markers[user_id]), what=f"user {user_id}'s marker")
        got[user_id] = [(e["aggregateId"], e["eventType"]) for e in socket.events()]
        socket.close()

    assert got[alice.pk] == [(personal, "TodoCreated"), (shared, "TodoCreated"), (personal, "TodoAssigned"),
                             (markers[alice.pk], "TodoCreated")]
    assert got[bob.pk] == [(shared, "TodoCreated"), (markers[bob.pk], "TodoCreated")]
    assert got[carol.pk] == [(personal, "TodoAssigned"), (markers[carol.pk], "TodoCreated")]
    assert got[dave.pk] == [(markers[dave.pk], "TodoCreated")]


def test_a_reconnecting_client_gets_what_it_missed_then_live_frames(live, user_factory):
    alice, bob, carol = (user_factory() for _ in range(3))
    team = Team.objects.create(name="core", owner=alice)
    team.members.add(alice, bob)
    first = Socket(live, token=token(bob))
    shared = create(alice, "shared", teamId=str(team.id))
    first.read_until(event_of(shared, "TodoCreated"))
    first.close()

    owner = api_client(alice)
    assert owner.patch(f"/api/todos/{shared}/", {"title": "renamed"}, format="json").status_code == 200
    assert owner.post(f"/api/todos/{shared}/prioritize/", {"priority": "high"}, format="json").status_code == 200

    again = Socket(live, token=token(bob), after=first.positions())
    ready = again.read_until(lambda f: f["type"] == "ready", what="the end of the catch-up")
    assert ready["complete"] is True
    assert [(e["eventType"], e["aggregateVersion"]) for e in again.events()] == [
        ("TodoUpdated", 2), ("TodoPrioritized", 3)]
    assert owner.post(f"/api/todos/{shared}/complete/", format="json").status_code == 200
    again.read_until(event_of(shared, "TodoCompleted"), what="the live frame after the catch-up")
    assert [e["aggregateVersion"] for e in again.events()] == [2, 3, 4], "no gap, no duplicate"

    # A gap seen in aggregateVersion is filled from the history on request...
    again.send({"type": "catchup", "todoId": shared, "afterVersion": 0, "beforeVersion": 3})
    again.read_until(lambda f: f["type"] == "event" and f["event"]["aggregateVersion"] == 2)
    assert [e["aggregateVersion"] for e in again.events()][-2:] == [1, 2]
    # ...but only for a todo the user may see.
    outsider = Socket(live, token=token(carol))
    outsider.send({"type": "catchup", "todoId": shared, "afterVersion": 0})
    error = outsider.read_until(lambda f: f["type"] == "error")
    assert "not found" in error["error"]
    assert not outsider.events()
    # A large beforeVersion makes the socket wait for the projection only once the user may see
    # the todo: an outsider's answer comes at once (the wait is 5 s), so its delay tells nothing.
    outsider.send({"type": "catchup", "todoId": shared, "afterVersion": 0, "beforeVersion": 10**6})
    assert "not found" in outsider.read_until(lambda f: f["type"] == "error", timeout=3)["error"]
    assert not outsider.events()

    # Malformed frames get an error and the socket stays open; an oversized one closes it.
    for bad in ("not json", "[1, 2]", {"type": "dance"}, {"type": "catchup", "todoId": "x", "afterVersion": 0}):
        outsider.send(bad)
        outsider.read_until(lambda f: f["type"] == "error", what=f"an error frame for {bad!r}")
    outsider.send({"type": "ping"})
    outsider.read_until(lambda f: f["type"] == "pong")
    outsider.send("x" * 5000)
    assert closed_with(outsider) == 4413


def test_native_clients_connect_with_a_token_and_no_origin_but_cookie_sessions_need_ours(web, user_factory, client):
    """A CLI or a mobile app sends no Origin: its token is enough. A browser's cookie session
    from a foreign page, or with no Origin at all, is refused."""
    user = user_factory()
    native = Socket(web, token=token(user), origin=False)
    native.send({"type": "ping"})
    assert native.read_until(lambda f: f["type"] == "pong")["type"] == "pong"
    native.close()

    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    from websockets.sync.client import connect
    from urllib.parse import urlsplit

    url = f"ws://{urlsplit(web).netloc}/ws/todos/"
    for origin in (None, "http://evil.example"):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, origin=origin, additional_headers={"Cookie": cookie}, open_timeout=10)
        assert refused.value.response.status_code == 403
    with connect(url, origin=web, additional_headers={"Cookie": cookie}, open_timeout=10) as browser:
        browser.send('{"type": "ping"}')
        assert browser.recv(timeout=10) == '{"type": "pong"}'
