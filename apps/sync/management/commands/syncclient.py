"""A terminal sync client: a device of yours with its own replica in SQLite, usable offline."""
import getpass
import os
import re
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.sync.api.serializers import DESCRIPTION_MAX, TITLE_MAX
from apps.sync.client.queue import Queue
from apps.sync.client.session import SyncClientError, obtain_token, register_device, resolve_conflict, sync
from apps.sync.client.store import Store
from apps.todos.events import PRIORITIES

DEVICE_NAME = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")


class Command(BaseCommand):
    help = (
        "A device of yours in the terminal: it keeps a replica of your todos in SQLite, lists and edits them "
        "with or without a network, and syncs when connected (the sync protocol of /ws/sync/, exactly as a "
        "phone app would speak it).\n\n"
        "  python manage.py syncclient --device laptop --username alice sync   # asks the password once\n"
        "  python manage.py syncclient --device laptop list\n"
        "  python manage.py syncclient --device laptop add 'Buy milk' --priority high\n"
        "  python manage.py syncclient --device laptop edit 3f2a --title 'Buy oat milk'\n"
        "  python manage.py syncclient --device laptop complete 3f2a\n"
        "  python manage.py syncclient --device laptop delete 3f2a\n"
        "  python manage.py syncclient --device laptop status\n"
        "  python manage.py syncclient --device laptop resolve 9c1e 'Buy oat milk'   # a conflict: pick a value\n"
        "  python manage.py syncclient --device laptop sync --follow           # push, then print live changes\n\n"
        "Changes made offline wait in the queue (`status` counts them) until the next `sync`. The server and "
        "token are remembered in the device's state (--state-dir, default ~/.polystack/devices). "
        "Exit status: 0 done, 1 refused (bad input, nothing such), 2 the server unreachable or refusing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--device", required=True, help="This device's name (letters, digits, . _ -).")
        parser.add_argument("--server", help="The web server (default: the one remembered, else http://127.0.0.1:8000).")
        parser.add_argument("--username", help="Sign in as this user (the password from $POLYSTACK_PASSWORD, "
                                               "else asked); the token is remembered.")
        parser.add_argument("--token", default=os.environ.get("POLYSTACK_TOKEN"),
                            help="An API token instead of a username (default: $POLYSTACK_TOKEN).")
        parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get(
            "POLYSTACK_CLIENT_DIR", Path.home() / ".polystack" / "devices")), help="Where replicas live.")
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="The todos as this device sees them (* pending, ! conflict).")
        actions.add_parser("status", help="Where the replica stands: offset, pending changes, open conflicts.")
        add = actions.add_parser("add", help="A new todo.")
        add.add_argument("title")
        add.add_argument("--description", default="")
        add.add_argument("--priority", choices=PRIORITIES, default="medium")
        edit = actions.add_parser("edit", help="Change a todo's fields (by the start of its id).")
        edit.add_argument("todo")
        edit.add_argument("--title")
        edit.add_argument("--description")
        edit.add_argument("--priority", choices=PRIORITIES)
        for name in ("complete", "delete"):
            actions.add_parser(name, help=f"{name.capitalize()} a todo (by the start of its id).").add_argument("todo")
        resolve = actions.add_parser("resolve", help="Resolve a conflict (by the start of its id) with a value.")
        resolve.add_argument("conflict")
        resolve.add_argument("value")
        run = actions.add_parser("sync", help="Push the queued changes and receive what changed.")
        run.add_argument("--follow", action="store_true", help="Then keep printing live changes until Ctrl-C.")

    def handle(self, *args, device: str, action: str, state_dir: Path, **options):
        if not DEVICE_NAME.fullmatch(device):
            raise CommandError("--device: 1 to 64 letters, digits, '.', '_' or '-'", returncode=1)
        store = Store(state_dir / f"{device}.sqlite3")
        try:
            queue = store.load()
            getattr(self, f"_{action}")(store=store, queue=queue, device=device, **options)
        except SyncClientError as exc:
            raise CommandError(str(exc), returncode=2) from None
        finally:
            store.close()

    # --- offline -------------------------------------------------------------------------------
    def _list(self, *, queue: Queue, **_):
        todos = sorted(queue.view().values(), key=lambda t: (t["completed"], t.get("createdAt") or "~", t["id"]))
        for todo in todos:
            marks = ("*" if todo.get("pending") else " ") + ("!" if todo.get("conflicts") else " ")
            self.stdout.write(f"{todo['id'][:8]} {marks} [{'x' if todo['completed'] else ' '}] {todo['title']} "
                              f"({todo['priority']})")
        if not todos:
            self.stdout.write("no todos")

    def _status(self, *, store: Store, queue: Queue, device: str, **_):
        conflicts = [(t, c) for t in queue.replica.todos.values() for c in t.get("conflicts", [])]
        self.stdout.write(f"device {device} ({store.get('device_id', 'not registered yet')}) at "
                          f"{store.get('server', 'no server yet')}\n"
                          f"offset {queue.replica.offset}, {len(queue.replica.todos)} todos, "
                          f"{len(queue.pending)} pending changes, {len(conflicts)} open conflicts")
        for todo, conflict in conflicts:
            self.stdout.write(f"  conflict {conflict['conflictId'][:8]} on {conflict['field']} of {todo['id'][:8]}: "
                              f"{conflict['localValue']!r} (this change) vs {conflict['remoteValue']!r} (kept)")

    def _change(self, store: Store, queue: Queue, name: str, todo_id: str | None, **args):
        mutation = queue.change(name, todo_id, **args)
        store.save(queue)
        self.stdout.write(f"{name} {mutation['todoId'][:8]} queued ({len(queue.pending)} pending): "
                          "`sync` sends it")

    def _add(self, *, store, queue, title: str, description: str, priority: str, **_):
        self._check_text(title=title, description=description)
        self._change(store, queue, "create", None, title=title, description=description, priority=priority)

    def _edit(self, *, store, queue, todo: str, title, description, priority, **_):
        fields = {k: v for k, v in (("title", title), ("description", description), ("priority", priority))
                  if v is not None}
        if not fields:
            raise CommandError("give --title, --description or --priority", returncode=1)
        self._check_text(**fields)
        self._change(store, queue, "update", self._todo(queue, todo), **fields)

    def _complete(self, *, store, queue, todo: str, **_):
        self._change(store, queue, "complete", self._todo(queue, todo))

    def _delete(self, *, store, queue, todo: str, **_):
        self._change(store, queue, "delete", self._todo(queue, todo))

    @staticmethod
    def _check_text(**fields):
        if "title" in fields and not 1 <= len(fields["title"]) <= TITLE_MAX:
            raise CommandError(f"a title has 1 to {TITLE_MAX} characters", returncode=1)
        if len(fields.get("description") or "") > DESCRIPTION_MAX:
            raise CommandError(f"a description has at most {DESCRIPTION_MAX} characters", returncode=1)

    @staticmethod
    def _todo(queue: Queue, prefix: str) -> str:
        found = [todo_id for todo_id in queue.view() if todo_id.startswith(prefix.lower())]
        if len(found) != 1:
            raise CommandError(f"{'no' if not found else 'more than one'} todo whose id starts with {prefix!r}",
                               returncode=1)
        return found[0]

    # --- online --------------------------------------------------------------------------------
    def _connection(self, store: Store, device: str, server: str | None, username: str | None,
                    token: str | None) -> tuple[str, str, str]:
        server = server or store.get("server") or "http://127.0.0.1:8000"
        if username:
            password = os.environ.get("POLYSTACK_PASSWORD") or getpass.getpass(f"password of {username}: ")
            token = obtain_token(server, username, password)
        token = token or store.get("token")
        if not token:
            raise CommandError("sign in once: --username NAME (or --token, $POLYSTACK_TOKEN)", returncode=1)
        if store.get("server") != server or store.get("token") != token or not store.get("device_id"):
            device_id = store.get("device_id") if store.get("token") == token else None
            store.put("device_id", device_id or register_device(server, token, device))
            store.put("server", server)
            store.put("token", token)
        return server, token, store.get("device_id")

    def _sync(self, *, store: Store, queue: Queue, device: str, server, username, token, follow: bool, **_):
        server, token, device_id = self._connection(store, device, server, username, token)
        sent = len(queue.pending)

        def seen(frame: dict) -> None:
            if frame["type"] in ("record", "snapshot", "snapshot.part", "pushed", "ready"):
                store.save(queue)
            if follow and frame["type"] == "record":
                todo, event = frame["record"]["todo"], frame["record"]["event"]
                self.stdout.write(f"{event['eventType']} {event['aggregateId'][:8]}"
                                  + (f": {todo['title']}" if todo else ""))
                self.stdout.flush()

        try:
            results = sync(server=server, token=token, device_id=device_id, queue=queue, on_frame=seen, follow=follow)
        except KeyboardInterrupt:
            store.save(queue)
            return
        store.save(queue)
        for result in results:
            if result["status"] == "rejected":
                self.stdout.write(f"change {result['id']} refused: {result.get('error')} {result.get('errors') or ''}")
            for field, kept in (result.get("lost") or {}).items():
                self.stdout.write(f"change {result['id']}: {field} lost to a concurrent change (kept {kept!r})")
            for conflict in result.get("conflicts") or ():
                self.stdout.write(f"change {result['id']}: conflict {conflict['conflictId'][:8]} on "
                                  f"{conflict['field']}: resolve it with `resolve`")
        self.stdout.write(f"synced: {sent} changes pushed, at offset {queue.replica.offset}, "
                          f"{len(queue.replica.todos)} todos, {len(queue.pending)} pending")

    def _resolve(self, *, store: Store, queue: Queue, device: str, server, username, token, conflict: str,
                 value: str, **_):
        server, token, _ = self._connection(store, device, server, username, token)
        found = [c for t in queue.replica.todos.values() for c in t.get("conflicts", [])
                 if c["conflictId"].startswith(conflict.lower())]
        if len(found) != 1:
            raise CommandError(f"{'no' if not found else 'more than one'} open conflict whose id starts with "
                               f"{conflict!r} (`sync` first?)", returncode=1)
        chosen = {"true": True, "false": False}.get(value) if found[0]["field"] == "completed" else value
        resolve_conflict(server, token, found[0]["conflictId"], chosen)
        self.stdout.write(f"conflict {found[0]['conflictId'][:8]} resolved: {found[0]['field']} = {chosen!r}")
