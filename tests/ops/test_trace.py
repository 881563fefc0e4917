"""One correlationId followed through the system on the admin's streams page: the command's
events with their positions, which groups have read them (their committed offsets), and what
the groups' tables show — projected, notified, device records — while a group that is not
running shows "not yet"."""
from apps.notifications.models import Notification
from apps.sync.models import SyncRecord
from polystack.ops import streams, trace
from tests.factories import teammates
from tests.helpers import api_client, wait_until
from tests.sync.conftest import sync  # noqa: F401  (the fixture, found by name)

__all__ = ["sync"]


def test_a_command_is_followed_through_every_group(roles, notifier, sync, user_factory, client):  # noqa: F811
    alice, bob = (user_factory(username=name, email=f"{name}@example.test") for name in ("alice", "bob"))
    operator = user_factory(username="operator", is_staff=True)
    teammates(alice, bob)
    roles("runrelay")
    roles("runconsumer", "projections")  # its own group, for this test's topics: the group the trace reads
    notifier()
    sync.coordinator()
    sync.sink()

    todo = api_client(alice).post("/api/todos/", {"title": "follow me"}, format="json",
                                  HTTP_X_CORRELATION_ID="follow-me-1").json()["id"]
    assert api_client(alice).post(f"/api/todos/{todo}/assign/", {"assignedTo": str(bob.pk)}, format="json",
                                  HTTP_X_CORRELATION_ID="follow-me-2").status_code == 200

    def followed():
        found = trace.follow("follow-me-2", admin=streams.admin_client())
        groups = {g.consumer: g for g in found.groups}
        # Settled: both notifications sent (a trace read a moment earlier shows "pending" or
        # "sending", and the rows have moved on when compared), both device records stored.
        done = (found.events and all(read for _, read in groups["projections"].reads)
                and len(groups["notifications"].steps) == 2
                and all(s.what.endswith(": sent") for s in groups["notifications"].steps)
                and len(groups["sync"].steps) == 2)
        return done and found

    found = wait_until(followed, timeout=60, what="the assignment through projection, notifications and sync")
    assert [e.event_type for e in found.events] == ["TodoAssigned"] and found.events[0].todo_id == todo
    groups = {g.consumer: g for g in found.groups}
    assert groups["projections"].steps[0].what.startswith("applied: the todo at version 2")
    assert {s.what for s in groups["notifications"].steps} == {
        f"{n.channel} to bob: {n.status}" for n in Notification.objects.filter(event_id=found.events[0].event_id)}
    recipients = set(SyncRecord.objects.filter(event_id=found.events[0].event_id).values_list("user_id", flat=True))
    assert recipients == {alice.pk, bob.pk} and len(groups["sync"].steps) == 2
    assert [read for _, read in groups["realtime"].reads] == [False], "the realtime role is not running: not yet"

    client.force_login(operator)
    page = client.get("/admin/streams/trace/?correlationId=follow-me-2")
    assert page.status_code == 200
    html = page.content.decode()
    assert "TodoAssigned" in html and "not yet" in html and "to bob" in html and "record for user" in html
    assert "TodoCreated" not in html, "another request's events are not this one's"


def test_a_correlation_id_is_checked_and_only_staff_may_follow_one(client, user_factory):
    assert client.get("/admin/streams/trace/?correlationId=x").status_code == 302
    client.force_login(user_factory(is_staff=True))
    assert client.get("/admin/streams/trace/").status_code == 200
    assert client.get("/admin/streams/trace/?correlationId=%27%3B+drop+table").status_code == 400
    assert client.get("/admin/streams/trace/?correlationId=" + "x" * 101).status_code == 400
    unknown = client.get("/admin/streams/trace/?correlationId=nobody-used-this")
    assert unknown.status_code == 200 and "No event of a command with this correlationId" in unknown.content.decode()
