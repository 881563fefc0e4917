"""Open sockets follow their credentials, against the real web role and Redis: logout, a
deleted token, a deactivated user or a new password close them (4401) within seconds; leaving a
team tells the page to reload."""

from rest_framework.authtoken.models import Token

from apps.todos.models import Team
from tests.helpers import unique
from tests.realtime.test_sockets import closed_with, token
from tests.realtime.wsclient import Socket


def ping_ok(socket: Socket) -> None:
    socket.send({"type": "ping"})
    socket.read_until(lambda f: f["type"] == "pong", what="the socket still answering")


def test_deleting_the_token_or_deactivating_the_user_closes_their_sockets(web, user_factory):
    alice, bob = user_factory(), user_factory()
    theirs, other = Socket(web, token=token(alice)), Socket(web, token=token(bob))
    ping_ok(theirs)
    Token.objects.filter(user=alice).delete()
    assert closed_with(theirs) == 4401
    ping_ok(other)  # nobody else's socket is touched

    bob.is_active = False
    bob.save()
    assert closed_with(other) == 4401


def cookie_socket(web: str, client) -> Socket:
    return Socket(web, headers={"Cookie": f"sessionid={client.cookies['sessionid'].value}"})


def test_logout_closes_that_sessions_sockets_and_a_new_password_closes_every_session(web, user_factory, client):
    from django.test import Client

    alice = user_factory()
    client.force_login(alice)
    elsewhere = Client()
    elsewhere.force_login(alice)
    here, there = cookie_socket(web, client), cookie_socket(web, elsewhere)
    assert client.post("/logout/").status_code == 302
    assert closed_with(here) == 4401
    ping_ok(there)  # another session of the same user stays

    alice.set_password("a whole new password")
    alice.save()
    assert closed_with(there) == 4401


def test_leaving_a_team_tells_the_page_to_reload(web, user_factory):
    alice, bob = user_factory(), user_factory()
    team = Team.objects.create(name="t", owner=alice)
    team.members.add(alice, bob)
    socket = Socket(web, token=token(bob))
    ping_ok(socket)
    team.members.remove(bob)
    socket.read_until(lambda f: f["type"] == "reload", what="the reload frame")


def test_a_client_reconnecting_in_a_loop_is_refused_for_a_while(roles, user_factory, tmp_path):
    """Connects per user are rated (WS_CONNECT_RATE): past it, 4429, and the user's count alone."""
    from polystack import throttle
    from tests.conftest import WebRole

    rate = "3/d"  # a day's window: a minute's could turn over between the third and the fourth
    web = WebRole(roles, tmp_path / "web.log", env={"WS_CONNECT_RATE": rate})
    web.start()
    looping, other = user_factory(), user_factory()
    for user in (looping, other):  # counted by user id: ids come again in a new test database
        throttle.forget(f"ws:connect:{user.pk}", rate)
    for _ in range(3):
        socket = Socket(web.base, token=token(looping))
        ping_ok(socket)
        socket.close()
    assert closed_with(Socket(web.base, token=token(looping))) == 4429
    ping_ok(Socket(web.base, token=token(other)))


def test_a_blank_after_catches_up_from_the_start(roles, web, user_factory):
    """`?after=` (nothing seen yet) is a catch-up of everything, ending with ready; it was
    taken for no catch-up at all, and the client waited for a ready frame that never came."""
    from tests.realtime.test_sockets import create

    roles("runrelay")
    roles("runconsumer", "projections", "--group-id", unique("projection"))
    alice = user_factory()
    todo = create(alice, "first")
    socket = Socket(web, token=token(alice), after={})
    assert socket.read_until(lambda f: f["type"] == "ready")["complete"] is True
    assert [e["aggregateId"] for e in socket.events()] == [todo]
