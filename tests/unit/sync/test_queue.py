"""A device's queue of changes (apps.sync.client.queue): numbered in order, shown at once on
top of the server's copy, dropped once confirmed; and its hybrid logical clock."""
import time

from apps.sync.client.queue import Clock, Queue


def record(offset: int, todo: dict, *, hlc: str | None = None) -> dict:
    metadata = {"origin": {"deviceId": "d", "mutationId": 1, "hlc": hlc}} if hlc else {}
    return {"type": "record", "offset": offset, "record": {
        "visible": True, "todo": todo, "event": {"aggregateId": todo["id"], "aggregateVersion": todo["version"],
                                                 "metadata": metadata}}}


def todo(todo_id: str, version: int, **fields) -> dict:
    return {"id": todo_id, "title": "t", "description": "", "priority": "medium", "completed": False,
            "assignedTo": None, "teamId": None, "version": version, "conflicts": [], **fields}


def test_changes_are_numbered_in_order_and_stamped_with_the_version_held():
    queue = Queue()
    queue.replica.apply(record(0, todo("x", 4)))
    created = queue.change("create", title="new")
    edited = queue.change("update", "x", title="renamed")
    assert [created["id"], edited["id"]] == [1, 2]
    assert (created["baseVersion"], edited["baseVersion"]) == (0, 4)
    assert tuple(map(int, created["hlc"].split(":"))) < tuple(map(int, edited["hlc"].split(":")))


def test_the_view_is_the_copy_with_the_pending_changes_on_top_and_rebased_on_each_record():
    queue = Queue()
    queue.apply(record(0, todo("x", 1, title="server")))
    queue.change("update", "x", description="mine")
    queue.change("complete", "x")
    assert queue.view()["x"]["description"] == "mine" and queue.view()["x"]["completed"] is True
    queue.apply(record(1, todo("x", 2, title="server, renamed")))  # someone else's change arrives
    assert queue.view()["x"]["title"] == "server, renamed" and queue.view()["x"]["description"] == "mine"
    queue.apply({"type": "pushed", "lastMutationId": 2, "results": []})
    assert queue.pending == [] and queue.view()["x"]["description"] == ""  # until its record comes back


def test_a_deleted_todo_leaves_the_view_and_confirmation_from_ready_drops_what_was_applied():
    queue = Queue()
    queue.apply(record(0, todo("x", 1)))
    queue.change("delete", "x")
    queue.change("create", title="another")
    assert list(queue.view()) == [queue.pending[1]["todoId"]]
    queue.apply({"type": "ready", "offset": 0, "lastMutationId": 1})
    assert [m["id"] for m in queue.pending] == [2]


def test_the_clock_ticks_within_a_millisecond_and_follows_a_later_clock_seen():
    clock = Clock()
    assert [clock.tick(5), clock.tick(5), clock.tick(4), clock.tick(6)] == ["5:0", "5:1", "5:2", "6:0"]
    clock.observe("100:3", now_ms=7)
    assert clock.tick(7) == "100:4"
    clock.observe("999999:0", now_ms=7)  # far ahead of this device's time: not followed
    assert clock.tick(7) == "100:5"
    queue = Queue()
    soon = int(time.time() * 1000) + 30_000
    queue.apply(record(0, todo("x", 1), hlc=f"{soon}:0"))
    assert queue.change("update", "x", title="after")["hlc"] == f"{soon}:1"
