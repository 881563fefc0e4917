"""The sync protocol end to end (web, relay, coordinator and sink as real processes): a new
device starts from a snapshot, then follows live; a device that was away resumes from its
offset with exactly what it missed; positions that cannot be continued get a snapshot, never a
gap; devices are a user's own."""
from django.conf import settings
from rest_framework.test import APIClient

from apps.sync.models import Device, SyncUser
from apps.todos import services
from tests import helpers
from tests.faults import CuttableProxy
from tests.helpers import free_port
from tests.realtime.test_sockets import closed_with, token
from tests.sync.device import Device as DeviceSocket


def register(client, name: str = "laptop", platform: str = "cli") -> str:
    answer = client.post("/api/devices/", {"name": name, "platform": platform}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()["deviceId"]


def stream_at(user) -> int:
    """Where the user's stream stands in the sink (-1: nothing yet)."""
    head = SyncUser.objects.filter(user_id=user.pk).first()
    return head.offset if head else -1


def sink_has(user, records: int):
    from apps.sync.models import SyncRecord

    return lambda: SyncRecord.objects.filter(user_id=user.pk).count() >= records


def held(device) -> dict[str, int]:
    return {todo_id: todo["version"] for todo_id, todo in device.replica.todos.items()}


def written(user) -> dict[str, int]:
    """The user's todos as the write side has them ({id: version}): what their devices must hold."""
    return {str(todo_id): version for todo_id, version in
            services.TodoState.objects.filter(owner=user, deleted=False).values_list("id", "version")}


def test_the_page_registers_itself_with_its_session(user_factory):
    """The page signs in with a session: its user is Django's lazy object, not a User."""
    session = APIClient()
    session.force_login(user_factory())
    answer = session.post("/api/devices/", {"name": "web: Chrome", "platform": "web"}, format="json")
    assert answer.status_code == 201, answer.content


def test_devices_are_registered_listed_changed_and_removed_by_their_user_only(user_factory):
    alice, bob = user_factory(), user_factory()
    as_alice, as_bob = helpers.api_client(alice), helpers.api_client(bob)
    device = register(as_alice, "phone", "mobile")
    listed = as_alice.get("/api/devices/").json()
    assert [(d["deviceId"], d["name"], d["platform"], d["online"], d["syncedOffset"]) for d in listed] == [
        (device, "phone", "mobile", False, -1)]
    assert as_bob.get("/api/devices/").json() == []
    assert as_bob.get(f"/api/devices/{device}/").status_code == 404
    assert as_bob.patch(f"/api/devices/{device}/", {"name": "mine"}, format="json").status_code == 404
    assert as_bob.delete(f"/api/devices/{device}/").status_code == 404
    assert APIClient().get("/api/devices/").status_code == 401

    for bad in ({"name": "x", "platform": "fridge"}, {"name": "", "platform": "web"}, {"platform": "web"},
                {"name": "x" * 101, "platform": "web"}, {"name": "x", "platform": "web", "owner": 1}, [], "x"):
        assert as_alice.post("/api/devices/", bad, format="json").status_code == 400, bad
    for bad in ({"filters": {"own": True, "teams": []}}, {"filters": {"teams": ["not-a-uuid"]}},
                {"filters": {"everything": True}}, {"filters": "own"}):
        assert as_alice.patch(f"/api/devices/{device}/", bad, format="json").status_code == 400, bad
    changed = as_alice.patch(f"/api/devices/{device}/", {"name": "old phone", "filters": {"own": True}},
                             format="json").json()
    assert changed["name"] == "old phone" and changed["filters"] == {"own": True}
    assert as_alice.delete(f"/api/devices/{device}/").status_code == 204
    assert as_alice.get("/api/devices/").json() == []


def test_a_new_device_takes_a_snapshot_follows_live_and_resumes_with_exactly_what_it_missed(synced, user_factory):
    alice = user_factory()
    client, key = helpers.api_client(alice), token(alice)
    todos = [services.todo_create(actor=alice, title=f"before {n}", correlation_id=f"b{n}").todo_id for n in range(3)]
    helpers.wait_until(sink_has(alice, 3), what="the sink storing alice's records")
    laptop = register(client)

    device = DeviceSocket(synced, token=key, device_id=laptop)
    snapshot = device.read_until(lambda f: f["type"] == "snapshot", what="a snapshot")
    assert sorted(t["id"] for t in snapshot["todos"]) == sorted(str(t) for t in todos)
    assert device.ready()["offset"] == snapshot["offset"] == stream_at(alice)

    services.todo_complete(actor=alice, todo_id=todos[0], correlation_id="live")
    live = device.read_until(lambda f: f["type"] == "record", what="a live record")
    assert live["record"]["todo"]["completed"] is True and live["record"]["event"]["eventType"] == "TodoCompleted"
    device.ack()
    helpers.wait_until(lambda: Device.objects.get(id=laptop).acked_offset == live["offset"], what="the ack stored")
    listed = client.get(f"/api/devices/{laptop}/").json()
    assert listed["online"] is True and listed["syncedOffset"] == live["offset"] == listed["streamOffset"]
    device.close()
    helpers.wait_until(lambda: client.get(f"/api/devices/{laptop}/").json()["online"] is False, what="offline")

    # Away while 1,000 events pass: back with its offset, it receives exactly those, no snapshot.
    for n in range(1000):
        services.todo_prioritize(actor=alice, todo_id=todos[n % 3], priority=("low", "high")[n % 2],
                                 correlation_id=f"away{n}")
    helpers.wait_until(sink_has(alice, 1004), timeout=120, what="the sink storing the thousand")
    again = DeviceSocket(synced, token=key, device_id=laptop, replica=device.replica)
    again.ready(timeout=60)
    got = [f for f in again.frames if f["type"] in ("record", "snapshot")]
    assert len(got) == 1000 and {f["type"] for f in got} == {"record"}
    assert [f["offset"] for f in got] == sorted({f["offset"] for f in got}), "in order, none twice"
    assert held(again) == written(alice), "the device holds what the write side decided"


def test_positions_that_cannot_be_continued_get_a_snapshot_never_a_gap(synced, user_factory):
    alice = user_factory()
    client, key = helpers.api_client(alice), token(alice)
    todo = services.todo_create(actor=alice, title="one", correlation_id="one").todo_id
    helpers.wait_until(sink_has(alice, 1), what="the sink storing alice's record")
    laptop = register(client)
    first = DeviceSocket(synced, token=key, device_id=laptop)
    first.ready()
    first.close()
    end = stream_at(alice)

    def hello(offset: int) -> str:
        device = DeviceSocket(synced, token=key, device_id=laptop, hello=False)
        device.send({"type": "hello", "deviceId": laptop, "lastOffset": offset})
        kind = device.read_until(lambda f: f["type"] in ("snapshot", "ready"), what="snapshot or ready")["type"]
        device.close()
        return kind

    assert hello(end) == "ready", "its own position continues"
    assert hello(end + 1000) == "snapshot", "beyond the stream's end (another user's partition, a restored database)"
    SyncUser.objects.filter(user_id=alice.pk).update(pruned_through=end)
    assert hello(end - 1) == "snapshot", "older than what is still held"
    SyncUser.objects.filter(user_id=alice.pk).update(pruned_through=-1)
    assert hello(end) == "ready"
    SyncUser.objects.filter(user_id=alice.pk).update(epoch=5)  # what alice may see changed meanwhile
    assert hello(end) == "snapshot"
    assert hello(end) == "ready", "the snapshot brought it to the new epoch"
    assert services.TodoState.objects.filter(id=todo).exists()


def test_a_device_is_its_users_own_and_bad_frames_are_answered_not_fatal(synced, user_factory):
    alice, bob = user_factory(), user_factory()
    laptop = register(helpers.api_client(alice))
    stranger = DeviceSocket(synced, token=token(bob), device_id=laptop)
    assert closed_with(stranger) == 4404, "bob cannot sync as alice's device"

    device = DeviceSocket(synced, token=token(alice), device_id=laptop, hello=False)
    for bad, says in (({"type": "ack", "offset": 1}, "hello first"), ({"type": "hello", "deviceId": "x"}, "UUID"),
                      ({"type": "hello", "deviceId": laptop, "lastOffset": "0"}, "integer"), ("[[[[", "JSON"),
                      ("[" * 3000, "JSON"), ({"type": "push"}, "hello first")):
        device.send(bad)
        assert says in device.read_until(lambda f: f["type"] == "error", what=f"an error for {bad}")["error"]
    device.send({"type": "hello", "deviceId": laptop, "lastOffset": -1})
    device.ready()
    device.send({"type": "ack", "offset": 10**9})
    assert "offset" in device.read_until(lambda f: f["type"] == "error", what="an error for the ack")["error"]
    assert helpers.api_client(alice).delete(f"/api/devices/{laptop}/").status_code == 204
    assert closed_with(device) == 4404, "a removed device's socket closes"
    assert closed_with(DeviceSocket(synced, token="not-a-token", device_id=laptop, hello=False)) == 4401


def test_a_filtered_device_holds_only_what_its_filters_let_through(synced, user_factory):
    alice, bob = user_factory(), user_factory()
    team = services.Team.objects.create(name="home", owner=bob)
    team.members.add(alice, bob)
    client, key = helpers.api_client(alice), token(alice)
    mine = str(services.todo_create(actor=alice, title="mine", correlation_id="m").todo_id)
    theirs = services.todo_create(actor=bob, title="the team's", team_id=team.id, correlation_id="t").todo_id
    helpers.wait_until(sink_has(alice, 2), what="the sink storing alice's records")
    phone, tablet = register(client, "phone", "mobile"), register(client, "tablet", "mobile")
    assert client.patch(f"/api/devices/{phone}/", {"filters": {"own": True}}, format="json").status_code == 200

    own = DeviceSocket(synced, token=key, device_id=phone)
    everything = DeviceSocket(synced, token=key, device_id=tablet)
    own.ready()
    everything.ready()
    assert set(own.replica.todos) == {mine}
    assert set(everything.replica.todos) == {mine, str(theirs)}

    services.todo_assign(actor=bob, todo_id=theirs, assignee=alice, correlation_id="a1")  # now alice's to do
    own.read_until(lambda f: str(theirs) in own.replica.todos, what="the todo assigned to alice on the phone")
    services.todo_assign(actor=bob, todo_id=theirs, assignee=bob, correlation_id="a2")  # and back
    own.read_until(lambda f: str(theirs) not in own.replica.todos, what="the phone dropping it again")
    everything.read_until(lambda f: f["type"] == "record" and f["record"]["event"]["aggregateVersion"] == 3,
                          what="the tablet seeing the reassignment")
    assert everything.replica.todos[str(theirs)]["assignedTo"] == str(bob.pk), "the tablet still holds it"


def test_a_live_push_lost_on_the_way_is_read_back_before_the_next(web, sync, roles, user_factory, tmp_path):
    """The sink's Redis is cut while it stores a record: the record is stored, its push lost.
    The next push names the lost one's offset as its previous: the socket reads it back first."""
    redis_port = int(settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    cut = CuttableProxy(listen_port=free_port(), target_port=redis_port).start()
    try:
        roles("runrelay")
        sync.coordinator()
        sync.roles("runconsumer", "sync-sink", "--group-id", helpers.unique("sync-sink"),
                   env={"REDIS_URL": f"redis://127.0.0.1:{cut.address[1]}/0"})
        alice = user_factory()
        todo = services.todo_create(actor=alice, title="one", correlation_id="one").todo_id
        helpers.wait_until(sink_has(alice, 1), what="the sink storing alice's record")
        device = DeviceSocket(web, token=token(alice), device_id=register(helpers.api_client(alice)))
        device.ready()

        cut.cut()
        services.todo_complete(actor=alice, todo_id=todo, correlation_id="lost")
        helpers.wait_until(sink_has(alice, 2), what="the record stored, its push lost")
        cut.restore()
        services.todo_prioritize(actor=alice, todo_id=todo, priority="urgent", correlation_id="next")
        device.read_until(lambda f: device.replica.todos[str(todo)]["priority"] == "urgent", what="the next push")
    finally:
        cut.stop()
    sink_log = next(tmp_path.glob("role-*-sync-sink.log")).read_text()
    assert "could not push 1 sync records live" in sink_log, "the push was lost indeed"
    records = [f["record"]["event"]["eventType"] for f in device.frames if f["type"] == "record"]
    assert records == ["TodoCompleted", "TodoPrioritized"], "the lost one first, then the next, once each"
    assert device.replica.todos[str(todo)]["completed"] is True
