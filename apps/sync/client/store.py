"""The terminal client's local replica: one SQLite file per device holding its copy of the todos,
its position in its user's stream, its queue of changes not confirmed yet, and its clock — so
it lists and edits offline, and resumes where it stopped."""
import json
import sqlite3
from pathlib import Path

from apps.sync.client.queue import Clock, Queue
from apps.sync.client.replica import Replica

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS todos (id TEXT PRIMARY KEY, todo TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY, mutation TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                            "value = excluded.value", (key, value))

    def load(self) -> Queue:
        todos = {todo_id: json.loads(text) for todo_id, text in self.db.execute("SELECT id, todo FROM todos")}
        pending = [json.loads(text) for (text,) in self.db.execute("SELECT mutation FROM pending ORDER BY id")]
        wall, counter = (int(part) for part in self.get("clock", "0:0").split(":"))
        return Queue(replica=Replica(todos=todos, offset=int(self.get("offset", "-1"))), pending=pending,
                     last_id=int(self.get("last_id", "0")), clock=Clock(wall, counter))

    def save(self, queue: Queue) -> None:
        """The whole state, in one transaction: a crash leaves the old one or the new one."""
        with self.db:
            self.db.execute("DELETE FROM todos")
            self.db.executemany("INSERT INTO todos (id, todo) VALUES (?, ?)",
                                [(todo_id, json.dumps(todo)) for todo_id, todo in queue.replica.todos.items()])
            self.db.execute("DELETE FROM pending")
            self.db.executemany("INSERT INTO pending (id, mutation) VALUES (?, ?)",
                                [(m["id"], json.dumps(m)) for m in queue.pending])
            for key, value in (("offset", queue.replica.offset), ("last_id", queue.last_id),
                               ("clock", f"{queue.clock.wall_ms}:{queue.clock.counter}")):
                self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                                "value = excluded.value", (key, str(value)))

    def close(self) -> None:
        self.db.close()
