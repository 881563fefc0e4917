"""Event sourcing: the read tables are only a projection of todo-events. Rebuild them from the
events while the API keeps answering, and get the same tables back."""
import threading

from apps.projections import services
from apps.projections.models import TodoEvent, TodoView
from apps.projections.replay import ReplayError, replay
from apps.web.demos.base import Api, DemoError, Show, demo_user, wait_for

TITLE = "event sourcing: rebuild the read tables from the events while the API answers from them"
WATCH = ("the checksum of the read tables before and after the rebuild, the rebuild's progress, "
         "and the API answering all along with the same todos")
USER = "demo-replay"


def run(show: Show, options) -> None:
    user, token = demo_user(USER)
    api = Api(options.url, token)
    made: list[str] = []
    try:
        show.step(f"As {USER}, make three todos through the API and change them: each change is an event.")
        for title in ("Write the talk", "Book the room", "Send the invites"):
            made.append(api.ok("POST", "/api/todos/", {"title": title})["id"])
        versions = {
            made[0]: api.ok("POST", f"/api/todos/{made[0]}/complete/")["version"],
            made[1]: api.ok("POST", f"/api/todos/{made[1]}/prioritize/", {"priority": "urgent"})["version"],
            made[2]: api.ok("PATCH", f"/api/todos/{made[2]}/", {"title": "Send the invites today"})["version"],
        }
        # A command answers 202 when its events are not projected yet: wait until they are.
        before = wait_for(lambda: _projected(api, versions), timeout=options.timeout_s,
                          what="the projection to show the demo's changes")
        for todo_id in made:
            todo = before[todo_id]
            show.say(f"{todo['title']!r}: version {todo['version']}, priority {todo['priority']}, "
                     f"completed {'yes' if todo['completed'] else 'no'}")

        show.step("Fingerprint the read tables, the projection the API answers from.")
        checksum_before = services.checksum()
        show.fact("todos in the read tables", f"{TodoView.objects.count():,}")
        show.fact("events in the read tables", f"{TodoEvent.objects.count():,}")
        show.fact("checksum before", checksum_before)

        show.step("Rebuild every read table from todo-events, from offset 0, beside the live ones; "
                  "then swap the new tables in by rename and drop the old ones.")
        show.watch("the API below keeps answering with the same todos while the tables are rebuilt.")
        reads = _Reader(api, made)
        reads.start()
        try:
            result = replay(progress=lambda p: show.say(p.line()), progress_every_s=0.5)
        except ReplayError as exc:
            raise DemoError(f"the replay refused: {exc}") from None
        finally:
            reads.stop()
        for warning in result.warnings():
            show.say(f"note: {warning}")
        show.fact("events replayed", f"{result.applied:,}")
        show.fact("replay seconds", f"{result.elapsed_s:.1f}")
        show.fact("API reads during the rebuild", reads.answers)
        show.fact("API reads that missed a todo", reads.incomplete)

        show.step("Fingerprint the rebuilt tables.")
        checksum_after = services.checksum()
        show.fact("checksum after", checksum_after)
        if checksum_after == checksum_before:
            show.say("The same: the tables are a pure function of the events.")
        else:
            show.say("It differs: other users' events arrived during the rebuild (the live projection "
                     "applied them too). Run it on a quiet system to see equal checksums.")

        show.step("Ask the API again: it answers from the rebuilt tables.")
        after = {todo["id"]: todo for todo in api.todos() if todo["id"] in made}
        same = all(after.get(todo_id) == before[todo_id] for todo_id in made)
        show.fact("the demo's todos unchanged", "yes" if same else "no")
    finally:
        _clean_up(show, api, made)


def _projected(api: Api, versions: dict[str, int]) -> dict[str, dict] | None:
    """The demo's todos as the API shows them, once they are at the versions the commands gave."""
    todos = {todo["id"]: todo for todo in api.todos() if todo["id"] in versions}
    return todos if all(todos.get(i, {}).get("version") == v for i, v in versions.items()) else None


class _Reader(threading.Thread):
    """Reads the demo's todos through the API in a loop, counting complete answers."""

    def __init__(self, api: Api, todo_ids: list[str]):
        super().__init__(daemon=True)
        self.api, self.wanted = api, set(todo_ids)
        self.answers = self.incomplete = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            seen = {todo["id"] for todo in self.api.todos()}
            self.answers += 1
            self.incomplete += not self.wanted <= seen
            self.stopping.wait(0.05)  # a reader's pace, not a wait for an effect

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def _clean_up(show: Show, api: Api, made: list[str]) -> None:
    show.step("Clean up: delete the demo's todos (their events stay in the log: it is append-only).")
    for todo_id in made:
        api.call("DELETE", f"/api/todos/{todo_id}/")
    show.say(f"deleted {len(made)} todos")
