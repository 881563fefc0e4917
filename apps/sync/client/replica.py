"""A device's copy of its user's todos, kept from the sync protocol's frames (pure: no I/O).

    snapshot  replaces the whole copy, at its offset (snapshot.part frames add the rest of it)
    record    a todo's newer version replaces the one held; a todo no longer visible (deleted, or
              taken from the user) goes; the offset moves to the record's

What a device stores is this copy and its offset: reconnecting with that offset, it receives
exactly what it lacks (apps.sync.sockets).
"""
from dataclasses import dataclass, field


@dataclass
class Replica:
    todos: dict[str, dict] = field(default_factory=dict)
    offset: int = -1  # of the last record applied (or the snapshot's): the device's lastOffset

    def apply(self, frame: dict) -> bool:
        """Apply one frame from the server; False for a frame that changes no copy (ready, pong, ...)."""
        kind = frame.get("type")
        if kind in ("snapshot", "snapshot.part"):
            if kind == "snapshot":
                self.todos = {}
            self.todos.update((todo["id"], todo) for todo in frame["todos"])
            self.offset = frame["offset"]
            return True
        if kind != "record":
            return False
        record = frame["record"]
        todo_id, version = record["event"]["aggregateId"], record["event"]["aggregateVersion"]
        held = self.todos.get(todo_id)
        if held is None or held["version"] < version:
            if record["visible"] and record["todo"] is not None:
                self.todos[todo_id] = record["todo"]
            else:
                self.todos.pop(todo_id, None)
        self.offset = frame["offset"]
        return True
