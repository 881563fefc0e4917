"""Multi-device sync: two terminal devices of one user, one offline making edits, a conflict on
the same field, and how each policy settles it (lww, merge, manual)."""
import time

from apps.sync.client.queue import Queue
from apps.sync.client.session import SyncClientError, register_device, resolve_conflict, sync
from apps.todos.models import TodoState
from apps.web.demos.base import Api, DemoError, Show, demo_user, wait_for

TITLE = "multi-device sync: two devices, one offline, a conflict settled by each policy"
WATCH = ("what each device shows (its copy, with its pending changes on top), what the server kept, and how "
         "each policy settles two edits of one field")
USER = "demo-sync"


class Device:
    """A device of the demo's user: its copy and queue (apps.sync.client), synced on demand."""

    def __init__(self, api: Api, name: str):
        self.api, self.name = api, name
        try:
            self.id = register_device(api.url, api.token, name)
        except SyncClientError as exc:
            raise DemoError(str(exc)) from None
        self.queue = Queue()

    def sync(self) -> list[dict]:
        try:
            return sync(server=self.api.url, token=self.api.token, device_id=self.id, queue=self.queue)
        except SyncClientError as exc:
            raise DemoError(f"{self.name}: {exc}") from None

    def edit(self, todo_id: str, **fields) -> None:
        self.queue.change("update", todo_id, **fields)
        time.sleep(0.002)  # the next device's clock reads a later millisecond: the order is the story

    def todo(self, todo_id: str) -> dict:
        return self.queue.view()[todo_id]


def run(show: Show, options) -> None:
    user, token = demo_user(USER)
    api = Api(options.url, token)
    policy_before = api.ok("GET", "/api/sync/settings/")["conflictPolicy"]
    devices: list[Device] = []
    todo_id = None
    try:
        show.step(f"Two devices of {USER}, a laptop and a phone, each with its own copy of the todos.")
        laptop, phone = Device(api, "demo-laptop"), Device(api, "demo-phone")
        devices += [laptop, phone]
        show.fact("devices", f"laptop {laptop.id}, phone {phone.id}")
        todo_id = laptop.queue.change("create", title="Plan the trip", description="", priority="medium")["todoId"]
        show.say(f"The laptop adds 'Plan the trip' ({len(laptop.queue.pending)} change waiting), then syncs.")
        laptop.sync()
        phone.sync()
        show.fact("the phone after its first sync (a snapshot)", _line(phone.todo(todo_id)))

        show.step("The phone goes offline and edits; its changes wait in its queue, shown at once.")
        phone.edit(todo_id, description="Pack light")
        show.fact("the phone shows", _line(phone.todo(todo_id)) + f", {len(phone.queue.pending)} change waiting")
        show.fact("the server has", _line(_server(api, todo_id)))
        show.say("Different fields always merge: the laptop changes the priority meanwhile.")
        laptop.edit(todo_id, priority="high")
        laptop.sync()
        phone.sync()
        laptop.sync()
        show.fact("both fields kept, on the server", _line(_server(api, todo_id)))

        for policy, field, laptop_value, phone_value, story in (
            ("lww", "title", "Trip to Rome", "Trip to Oslo",
             "last writer wins by clock, not by arrival: the phone edited later, offline, and syncs last"),
            ("merge", "priority", "urgent", "low",
             "the field's own rule: the higher priority wins, whoever wrote later"),
            ("manual", "title", "Trip to Lisbon", "Trip to Porto",
             "the todo keeps its value and the conflict is recorded, for the owner to settle"),
        ):
            show.step(f"Policy {policy}: {story}.")
            api.ok("PUT", "/api/sync/settings/", {"conflictPolicy": policy})
            show.say(f"The laptop sets the {field} to {laptop_value!r} and syncs; the phone, offline, had not seen "
                     f"it and sets {phone_value!r}, then syncs.")
            laptop.edit(todo_id, **{field: laptop_value})
            laptop.sync()
            phone.edit(todo_id, **{field: phone_value})
            for result in phone.sync():
                for lost, kept in (result.get("lost") or {}).items():
                    show.say(f"the server answers the phone: its {lost} lost to a concurrent change (kept {kept!r})")
                for conflict in result.get("conflicts") or ():
                    show.say(f"the server answers the phone: conflict {conflict['conflictId'][:8]} on "
                             f"{conflict['field']}")
            laptop.sync()
            if policy == "manual":
                [conflict] = _server(api, todo_id, conflicts=True)
                show.fact("open conflict", f"{conflict['field']}: {conflict['localValue']!r} (the phone) vs "
                                           f"{conflict['remoteValue']!r} (kept)")
                show.fact("conflicts the laptop holds", len(laptop.todo(todo_id).get("conflicts", [])))
                show.say("The owner settles it with a third value, from the laptop.")
                resolve_conflict(api.url, token, conflict["conflictId"], "Trip to Porto and Lisbon")
                laptop.sync()
                phone.sync()
            # A device's copy follows the server through records, which come a moment after the
            # change (the coordinator, then the sink): sync until each holds the server's version.
            version = TodoState.objects.get(pk=todo_id).version
            for device in (laptop, phone):
                wait_for(lambda: device.sync() is not None and device.todo(todo_id)["version"] == version,
                         timeout=options.timeout_s, what=f"the {device.name} to reach version {version}")
            show.fact(f"{field} on the server ({policy})", _server(api, todo_id)[field])
            show.fact(f"{field} on the laptop ({policy})", laptop.todo(todo_id)[field])
            show.fact(f"{field} on the phone ({policy})", phone.todo(todo_id)[field])
            show.fact(f"open conflicts ({policy})", len(_server(api, todo_id, conflicts=True)))
    finally:
        show.step("Clean up: delete the todo and the two devices, and put the policy back.")
        if todo_id:
            api.call("DELETE", f"/api/todos/{todo_id}/")
        for device in devices:
            api.call("DELETE", f"/api/devices/{device.id}/")
        api.call("PUT", "/api/sync/settings/", {"conflictPolicy": policy_before})
        show.say(f"deleted the todo and {len(devices)} devices; policy {policy_before}")


def _line(todo: dict) -> str:
    return f"{todo['title']!r}, priority {todo['priority']}, description {todo.get('description')!r}"


def _server(api: Api, todo_id: str, *, conflicts: bool = False):
    """The todo as the write side keeps it (what every device converges to), or its open conflicts."""
    if conflicts:
        return [c for c in api.ok("GET", "/api/conflicts/") if c["todoId"] == todo_id]  # the open ones
    state = TodoState.objects.get(pk=todo_id)
    return {"title": state.title, "priority": state.priority, "description": state.description}
