"""Mutations through the sync protocol end to end (web, relay, coordinator and sink as real
processes): two devices of one user converge on each other's offline edits; a connection cut
mid-push or mid-catch-up loses nothing and applies nothing twice; conflicts reach every device
and are resolved through the API."""
from contextlib import contextmanager

from apps.sync.client.queue import Queue
from apps.sync.models import Conflict, SyncSettings
from apps.todos import services
from apps.todos.models import TodoState
from tests import helpers
from tests.faults import CuttableProxy
from tests.helpers import free_port
from tests.realtime.test_sockets import token
from tests.sync.device import Device as DeviceSocket
from tests.sync.test_protocol import register, sink_has, written


def shown(device) -> dict[str, tuple]:
    """What a device shows of each todo: its copy with its pending changes on top."""
    return {todo_id: (t["title"], t["description"], t["priority"], t["completed"])
            for todo_id, t in device.queue.view().items()}


def server_side(user) -> dict[str, tuple]:
    return {str(s.id): (s.title, s.description, s.priority, s.completed)
            for s in TodoState.objects.filter(owner=user, deleted=False)}


def settle(device, user, timeout: float = 60) -> None:
    """Read until the device shows what the server decided, with nothing pending."""
    device.read_until(lambda f: shown(device) == server_side(user) and not device.queue.pending,
                      timeout=timeout, what="the device converged with the server")


def test_two_devices_converge_on_each_others_offline_edits(synced, user_factory):
    alice = user_factory()
    client, key = helpers.api_client(alice), token(alice)
    laptop = DeviceSocket(synced, token=key, device_id=register(client, "laptop"))
    phone = DeviceSocket(synced, token=key, device_id=register(client, "phone", "mobile"))
    laptop.ready(), phone.ready()

    # The laptop, offline: makes two todos and edits one; nothing is sent yet, all is shown.
    groceries = laptop.queue.change("create", title="Groceries", priority="high")["todoId"]
    laptop.queue.change("update", groceries, description="milk, eggs")
    call = laptop.queue.change("create", title="Call mum")["todoId"]
    assert shown(laptop)[groceries] == ("Groceries", "milk, eggs", "high", False) and len(laptop.queue.pending) == 3
    answer = laptop.pushed()
    assert [r["status"] for r in answer["results"]] == ["applied"] * 3 and answer["lastMutationId"] == 3
    settle(laptop, alice)
    settle(phone, alice)

    # Both offline now: the phone completes one and renames the other; the laptop edits its notes.
    phone.queue.change("complete", call)
    phone.queue.change("update", groceries, title="Groceries for Sunday")
    laptop.queue.change("update", groceries, description="milk, eggs, bread")
    phone.pushed(), laptop.pushed()
    settle(laptop, alice), settle(phone, alice)
    assert server_side(alice) == {
        groceries: ("Groceries for Sunday", "milk, eggs, bread", "high", False),
        call: ("Call mum", "", "medium", True)}
    assert shown(laptop) == shown(phone) == server_side(alice)


@contextmanager
def cuttable(web: str):
    """A proxy to the web server that the test cuts (a network partition for one client)."""
    proxy = CuttableProxy(listen_port=free_port(), target_port=int(web.rsplit(":", 1)[1].strip("/"))).start()
    try:
        yield proxy, f"http://127.0.0.1:{proxy.address[1]}"
    finally:
        proxy.stop()


def test_a_push_cut_before_its_answer_is_resent_and_applies_once(synced, user_factory):
    web = synced
    alice = user_factory()
    client, key = helpers.api_client(alice), token(alice)
    device_id = register(client)
    queue = Queue()
    for n in range(40):
        queue.change("create", title=f"todo {n}")
    for attempt in range(3):  # cut at once after sending: the server may have applied none, some or all
        with cuttable(web) as (proxy, through):
            device = DeviceSocket(through, token=key, device_id=device_id, queue=queue)
            device.ready()
            device.push()
            proxy.cut()
            device.close()  # the connection is gone: its keepalive would complain after the test
    device = DeviceSocket(web, token=key, device_id=device_id, queue=queue)
    device.ready()  # its lastMutationId drops what was applied; the rest is resent
    if queue.pending:  # a push cut off may still be applying on the server: those are duplicates now
        assert {r["status"] for r in device.pushed()["results"]} <= {"applied", "duplicate"}
    settle(device, alice)
    assert len(server_side(alice)) == 40, "each of the forty todos once"
    assert services.TodoState.objects.filter(owner=alice).count() == 40


def test_a_catch_up_cut_midway_resumes_with_nothing_missing(synced, user_factory):
    web = synced
    alice = user_factory()
    client, key = helpers.api_client(alice), token(alice)
    device_id = register(client)
    todos = [services.todo_create(actor=alice, title=f"away {n}", correlation_id=f"a{n}").todo_id for n in range(5)]
    helpers.wait_until(sink_has(alice, 5), what="the sink storing the first records")
    device = DeviceSocket(web, token=key, device_id=device_id)
    device.ready()  # from a snapshot: it holds a position in its user's stream now
    device.close()
    for n in range(600):
        services.todo_prioritize(actor=alice, todo_id=todos[n % 5], priority=("low", "urgent")[n % 2],
                                 correlation_id=f"p{n}")
    helpers.wait_until(sink_has(alice, 605), timeout=120, what="the sink storing the 605 records")

    with cuttable(web) as (proxy, through):
        cut_off = DeviceSocket(through, token=key, device_id=device_id, queue=device.queue)
        cut_off.read_until(lambda f: f["type"] == "record" and f["offset"] > 100, what="the catch-up under way")
        proxy.cut()
        cut_off.close()
    partway = device.replica.offset
    again = DeviceSocket(web, token=key, device_id=device_id, queue=device.queue)
    again.ready(timeout=60)
    records = [f for f in again.frames if f["type"] == "record"]
    assert records and records[0]["offset"] > partway, "resumed after what it had, not from the start"
    assert not [f for f in again.frames if f["type"] == "snapshot"]
    assert {t: todo["version"] for t, todo in again.replica.todos.items()} == written(alice)


def test_a_conflict_reaches_every_device_and_is_resolved_through_the_api(synced, user_factory):
    alice = user_factory()
    SyncSettings.objects.create(user=alice, conflict_policy="manual")
    client, key = helpers.api_client(alice), token(alice)
    laptop = DeviceSocket(synced, token=key, device_id=register(client, "laptop"))
    phone = DeviceSocket(synced, token=key, device_id=register(client, "phone", "mobile"))
    laptop.ready(), phone.ready()
    todo = laptop.queue.change("create", title="Plan the trip")["todoId"]
    laptop.pushed()
    settle(laptop, alice), settle(phone, alice)

    laptop.queue.change("update", todo, title="Plan the trip to Rome")  # both offline, same field
    phone.queue.change("update", todo, title="Plan the trip to Oslo")
    laptop.pushed()
    answer = phone.pushed()
    [conflict] = answer["results"][0]["conflicts"]
    assert (conflict["localValue"], conflict["remoteValue"]) == ("Plan the trip to Oslo", "Plan the trip to Rome")
    for device in (laptop, phone):  # both values, on every device
        device.read_until(lambda f: device.replica.todos[todo]["conflicts"], what="the conflict on the device")
        [held] = device.replica.todos[todo]["conflicts"]
        assert (held["field"], held["localValue"], held["remoteValue"], held["baseValue"]) == (
            "title", "Plan the trip to Oslo", "Plan the trip to Rome", "Plan the trip")
    listed = client.get("/api/conflicts/").json()
    assert [c["conflictId"] for c in listed] == [conflict["conflictId"]]

    # A third value; the conflict closes on every device.
    resolved = client.post(f"/api/conflicts/{conflict['conflictId']}/resolve/", {"value": "Plan the trip to Porto"},
                           format="json")
    assert resolved.status_code == 200, resolved.content
    assert resolved.json()["resolution"] == "Plan the trip to Porto"
    for device in (laptop, phone):
        device.read_until(lambda f: device.replica.todos[todo]["title"] == "Plan the trip to Porto"
                          and not device.replica.todos[todo]["conflicts"], what="the resolution on the device")
    assert client.get("/api/conflicts/").json() == []
    again = client.post(f"/api/conflicts/{conflict['conflictId']}/resolve/", {"value": "x"}, format="json")
    assert again.status_code == 409
    assert Conflict.objects.get().resolved_by_id == alice.pk


def test_bad_pushes_are_answered_and_the_socket_goes_on(synced, user_factory):
    alice = user_factory()
    device = DeviceSocket(synced, token=token(alice), device_id=register(helpers.api_client(alice)))
    device.ready()
    todo = device.queue.change("create", title="fine")["todoId"]
    far = "99999999999999:0"
    for frame, says in [
        ({"type": "push"}, "mutations must be a list"),
        ({"type": "push", "mutations": []}, "mutations must be a list"),
        ({"type": "push", "mutations": [{"id": 1}] * 101}, "mutations must be a list"),
    ]:
        device.send(frame)
        assert says in device.read_until(lambda f: f["type"] == "error", what="an error")["error"]
    for mutations, refused in [
        (["not a mutation"], "without an id"), ([{"id": True}], "without an id"), ([{"id": 2**63}], "without an id"),
        ([{"id": 5, "name": "create", "todoId": todo, "hlc": "1:0", "args": {"title": "gap"}}], "resend from 1"),
    ]:
        device.send({"type": "push", "mutations": mutations})
        answer = device.read_until(lambda f: f["type"] == "pushed", what="pushed")
        assert refused in answer["refused"] and answer["lastMutationId"] == 0 and answer["results"] == []
    device.send({"type": "push", "mutations": [
        {"id": 1, "name": "create", "todoId": todo, "hlc": far, "args": {"title": "from the future"}},
        {"id": 2, "name": "create", "todoId": todo, "hlc": "1:0", "args": {"title": "nul\x00in it"}},
        {"id": 3, "name": "explode", "todoId": todo, "hlc": "1:0"},
        {"id": 4, "name": "update", "todoId": todo, "hlc": "1:0", "args": {"title": "x", "owner": 1}},
        {"id": 5, "name": "update", "todoId": todo, "hlc": "1:0", "args": {"assignedTo": "999999999"}},  # nobody
        {"id": 6, "name": "create", "todoId": todo, "hlc": "1:0", "args": {"title": "at last"}},
    ]})
    answer = device.read_until(lambda f: f["type"] == "pushed", what="pushed")
    assert [r["status"] for r in answer["results"]] == ["rejected"] * 5 + ["applied"]
    assert "ahead" in answer["results"][0]["error"] and answer["lastMutationId"] == 6
    assert answer["results"][4]["errors"] == {"args": {"assignedTo": ["No such user."]}}
    assert TodoState.objects.get(id=todo).title == "at last"
    device.send({"type": "ping"})
    device.read_until(lambda f: f["type"] == "pong", what="the socket still serving")


def test_a_flood_of_mutations_is_refused_until_the_window_turns(roles, user_factory, tmp_path):
    """Mutations pushed per user are rated (WS_PUSH_RATE, counted in mutations): past it, a push
    is refused whole with retryAfter, nothing of it applied, and the device's number stays."""
    from polystack import throttle
    from tests.conftest import WebRole

    rate = "3/d"  # a day's window: a minute's could turn over between the pushes
    web = WebRole(roles, tmp_path / "web.log", env={"WS_PUSH_RATE": rate})
    web.start()
    alice = user_factory()
    throttle.forget(f"ws:push:{alice.pk}", rate)  # counted by user id: ids come again in a new test database
    device = DeviceSocket(web.base, token=token(alice), device_id=register(helpers.api_client(alice), "laptop"))
    device.ready()
    device.queue.change("create", title="one")
    device.queue.change("create", title="two")
    assert [r["status"] for r in device.pushed()["results"]] == ["applied", "applied"]

    device.queue.change("create", title="three")
    device.queue.change("create", title="four")
    answer = device.pushed()
    assert answer["results"] == [] and answer["lastMutationId"] == 2 and answer["retryAfter"] > 0
    assert "too many changes" in answer["refused"] and answer["gap"] is False
    assert TodoState.objects.filter(owner=alice).count() == 2

    throttle.forget(f"ws:push:{alice.pk}", rate)  # the window turned
    assert [r["status"] for r in device.pushed()["results"]] == ["applied", "applied"]
    assert TodoState.objects.filter(owner=alice).count() == 4
