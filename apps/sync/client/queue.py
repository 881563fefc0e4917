"""A device's side of the mutations (pure: no I/O): its hybrid logical clock, its queue of
changes not yet confirmed, and the todos as the user sees them — the copy from the server with
the pending changes on top.

    change   (create, update, complete, delete) numbered lastMutationId + 1, stamped with the
             todo's version in the copy (`baseVersion`) and the clock; queued, shown at once
    push     the queue's head, in order; resent whole after a reconnect (the server answers
             "duplicate" for what it applied already)
    pushed   / ready: every mutation up to the server's lastMutationId is done — dropped
             from the queue; its effect comes (or came) back as records into the copy

The view is recomputed from the copy and the queue, never patched: when a record brings the
server's version of a todo, the pending changes are applied on top of it again (a rebase), so
what the user sees is always the server's state plus what the server has not confirmed yet.
"""
import time
import uuid
from dataclasses import dataclass, field

from apps.sync.client.replica import Replica
from apps.sync.conflicts import MAX_SKEW_MS

MAX_PUSH = 100  # as the server takes at most (apps.sync.sockets)


@dataclass
class Clock:
    """A hybrid logical clock: wall milliseconds, and a counter for events within one."""

    wall_ms: int = 0
    counter: int = 0

    def tick(self, now_ms: int | None = None) -> str:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if now_ms > self.wall_ms:
            self.wall_ms, self.counter = now_ms, 0
        else:
            self.counter += 1
        return f"{self.wall_ms}:{self.counter}"

    def observe(self, hlc: str, now_ms: int | None = None) -> None:
        """A clock seen in a record: later local changes are stamped after it. Not one further
        ahead of this device's time than the server accepts (a forged record could carry it):
        every change stamped after it would be refused."""
        wall, counter = (int(part) for part in hlc.split(":"))
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if wall <= now_ms + MAX_SKEW_MS and (wall, counter) > (self.wall_ms, self.counter):
            self.wall_ms, self.counter = wall, counter


@dataclass
class Queue:
    replica: Replica = field(default_factory=Replica)
    pending: list[dict] = field(default_factory=list)
    last_id: int = 0  # the last mutation id given out
    clock: Clock = field(default_factory=Clock)

    def change(self, name: str, todo_id: str | None = None, **args) -> dict:
        """Queue a change made now; the mutation, to push (a new todo's id is chosen here)."""
        todo_id = todo_id or str(uuid.uuid4())
        held = self.replica.todos.get(todo_id)
        self.last_id += 1
        mutation = {"id": self.last_id, "name": name, "todoId": todo_id,
                    "baseVersion": held["version"] if held else 0, "hlc": self.clock.tick(), "args": args}
        self.pending.append(mutation)
        return mutation

    def to_push(self) -> list[dict]:
        return self.pending[:MAX_PUSH]

    def confirmed(self, last_mutation_id: int) -> None:
        """The server applied (or refused for good) every mutation up to this id."""
        self.pending = [m for m in self.pending if m["id"] > last_mutation_id]
        self.last_id = max(self.last_id, last_mutation_id)

    def apply(self, frame: dict) -> None:
        """A frame from the server: records into the copy, confirmations out of the queue."""
        if frame.get("type") in ("ready", "pushed"):
            self.confirmed(frame["lastMutationId"])
        elif self.replica.apply(frame) and frame.get("type") == "record":
            origin = frame["record"]["event"].get("metadata", {}).get("origin")
            if origin:
                self.clock.observe(origin["hlc"])

    def view(self) -> dict[str, dict]:
        """The todos as the user sees them: the copy, and the pending changes on top."""
        todos = {todo_id: dict(todo) for todo_id, todo in self.replica.todos.items()}
        for m in self.pending:
            todo = todos.get(m["todoId"])
            if m["name"] == "create" and todo is None and m["todoId"] not in self.replica.todos:
                todos[m["todoId"]] = {"id": m["todoId"], "title": m["args"]["title"],
                                      "description": m["args"].get("description", ""),
                                      "priority": m["args"].get("priority", "medium"), "completed": False,
                                      "assignedTo": None, "teamId": m["args"].get("teamId"), "version": 0,
                                      "conflicts": [], "pending": True}
            elif todo is not None and m["name"] == "update":
                todos[m["todoId"]] = {**todo, **m["args"], "pending": True}
            elif todo is not None and m["name"] == "complete":
                todos[m["todoId"]] = {**todo, "completed": True, "pending": True}
            elif m["name"] == "delete":
                todos.pop(m["todoId"], None)
        return todos
