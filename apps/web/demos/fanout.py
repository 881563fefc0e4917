"""Fan-out: one event log, several consumer groups, each with its own committed offsets. Stop
one role; the others keep serving; its lag grows and drains when it is back, and nobody is
notified twice."""
import json
import threading
import time
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from apps.notifications.models import CHANNELS, Notification
from apps.web.demos import processes
from apps.web.demos.base import Api, DemoError, Show, demo_team, demo_user, wait_for
from polystack.ops import kafka_view
from polystack.streaming import kafka
from polystack.streaming.registry import get_consumers
from polystack.streaming.topics import TODO_EVENTS, resolve

TITLE = "fan-out: stop the notifications role; the others keep serving; its lag grows, then drains"
WATCH = ("the notification group's lag, read from Kafka's own committed offsets, while the projection "
         "and the live socket keep up; then no notification sent twice")
OWNER, TEAMMATE = "demo-fanout", "demo-fanout-teammate"
ROLE = "notifications"
CHANGES = 3  # todos made and assigned while the role is down: two events each


def run(show: Show, options) -> None:
    owner, owner_token = demo_user(OWNER)
    teammate, teammate_token = demo_user(TEAMMATE)
    team = demo_team("Fan-out demo team", owner, teammate)
    api, teammate_api = Api(options.url, owner_token), Api(options.url, teammate_token)
    group = options.group_of(ROLE)
    topic = resolve(TODO_EVENTS)
    admin = kafka.admin_client()

    def lag() -> int:
        return kafka_view.groups(admin, {group: [topic]})[0].lag

    show.step(f"Every role reads {topic} in a consumer group of its own: Kafka keeps each group's "
              "committed offsets, so each reads at its own pace.")
    for definition in get_consumers().values():
        if TODO_EVENTS in definition.topics:
            show.say(f"{definition.name:16} group {definition.group_id}")
    try:
        role = processes.find(processes.runconsumer(ROLE, options.groups.get(ROLE)), timeout=options.timeout_s)
    except processes.RoleNotFoundError as exc:
        raise DemoError(str(exc)) from None
    show.fact(f"{ROLE} role", role.how)
    wait_for(lambda: lag() == 0, timeout=options.timeout_s, what=f"group {group} to catch up before the demo")
    show.fact(f"lag of {group} now", lag())

    made: list[str] = []
    socket = _LiveSocket(options.url, teammate_token)
    try:
        show.step(f"Stop the {ROLE} role, as a deploy would (SIGTERM: it commits and leaves its group).")
        role.stop()
        try:
            wait_for(lambda: _members(admin, group) == 0, timeout=options.timeout_s,
                     what=f"group {group} to have no member")
            show.fact(f"members of {group}", _members(admin, group))

            show.step(f"As {OWNER}, make {CHANGES} team todos and assign each to {TEAMMATE}: "
                      "each assignment should notify them.")
            show.watch("the lag grows by two events a todo (created, assigned); nobody reads them for notifications. "
                       f"The admin's streams page ({options.url.rstrip('/')}/admin/streams/) shows it too.")
            start = lag()
            for n in range(CHANGES):
                todo = api.ok("POST", "/api/todos/", {"title": f"Fan-out demo {n + 1}", "teamId": str(team.id)})
                made.append(todo["id"])
                api.ok("POST", f"/api/todos/{todo['id']}/assign/", {"assignedTo": str(teammate.pk)})
                wait_for(lambda: lag() - start >= 2 * (n + 1), timeout=options.timeout_s,
                         what="the relay to publish the events")
                show.say(f"after todo {n + 1}: lag of {group} is {lag()}")
            show.fact(f"lag of {group} with the role down", lag())

            show.step("Meanwhile the other groups keep serving:")
            projected = wait_for(lambda: _assigned_to(teammate_api, made, teammate.pk), timeout=options.timeout_s,
                                 what="the projection to show the assignments")
            show.fact("todos the API shows assigned to the teammate (the projection)", projected)
            wait_for(lambda: socket.count(made) >= 2 * CHANGES, timeout=options.timeout_s, what="the live frames")
            show.fact("live frames the teammate's socket got (realtime)", socket.count(made))
            show.fact("notifications for the teammate so far", _notifications(teammate, made).count())
            if options.hold_s:
                show.say(f"The role stays down {options.hold_s:g} s more; the lag stays where it is.")
                time.sleep(options.hold_s)  # how long the fault lasts: what the demo shows, not a wait
        finally:
            role.restart()

        show.step(f"Start the {ROLE} role again: it resumes from its group's committed offsets.")
        show.watch("the lag drains to 0.")
        new_pid = processes.wait_restarted(role, options.timeout_s)
        show.fact(f"{ROLE} role is back", f"pid {new_pid}")
        seen = None
        deadline = time.monotonic() + options.timeout_s
        while (current := lag()) != 0:
            if current != seen:
                show.say(f"lag of {group}: {current}")
                seen = current
            if time.monotonic() > deadline:
                raise DemoError(f"the lag of {group} did not drain within {options.timeout_s:.0f} s")
            time.sleep(0.2)  # the poll interval of a deadline wait
        show.fact(f"lag of {group} after the restart", current)

        show.step("Each assignment notified the teammate once per channel: one row per (event, recipient, "
                  "channel), a unique constraint, and each sent once.")
        wait_for(lambda: not _notifications(teammate, made).exclude(status=Notification.Status.SENT).exists()
                 and _notifications(teammate, made).count() >= CHANGES,
                 timeout=options.timeout_s, what="the notifications to be sent")
        rows = _notifications(teammate, made)
        for channel, label in CHANNELS:
            show.fact(f"{label} notifications sent", rows.filter(channel=channel).count())
        show.fact("rows tried more than once (a retry or a resend)", rows.filter(attempts__gt=1).count())
    finally:
        socket.close()
        show.step("Clean up: delete the demo's todos.")
        for todo_id in made:
            api.call("DELETE", f"/api/todos/{todo_id}/")
        show.say(f"deleted {len(made)} todos")


def _members(admin, group: str) -> int:
    return len(kafka_view.groups(admin, {group: []})[0].members)


def _assigned_to(api: Api, todo_ids: list[str], user_id: int) -> int:
    return sum(1 for todo in api.todos() if todo["id"] in todo_ids and todo["assignedTo"] == str(user_id))


def _notifications(user, todo_ids: list[str]):
    return Notification.objects.filter(recipient=user, todo_id__in=todo_ids, event_type="TodoAssigned")


class _LiveSocket:
    """The teammate's live socket (/ws/todos/), as the page holds it: it counts the event frames
    of the demo's todos."""

    def __init__(self, url: str, token: str):
        parts = urlsplit(url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        try:
            self.ws = connect(f"{scheme}://{parts.netloc}/ws/todos/?token={token}", open_timeout=15, legacy=True)
        except (OSError, TimeoutError) as exc:
            raise DemoError(f"cannot open a socket at {url}: {exc}") from None
        self.todos: list[str] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            for text in self.ws:
                frame = json.loads(text)
                if frame.get("type") == "event":
                    with self.lock:
                        self.todos.append(frame["event"]["aggregateId"])
        except (ConnectionClosed, ValueError):
            pass

    def count(self, todo_ids: list[str]) -> int:
        with self.lock:
            return sum(1 for todo in self.todos if todo in todo_ids)

    def close(self) -> None:
        self.ws.close()
        self.reader.join(timeout=5)
