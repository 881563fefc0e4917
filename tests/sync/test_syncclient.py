"""The terminal client (`manage.py syncclient`), a real process against the real web, relay,
coordinator and sink: two terminal devices of one user edit offline, sync, converge; a conflict
under the manual policy is shown and resolved from the terminal."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.sync.models import SyncSettings
from apps.todos.models import TodoState
from tests import helpers
from tests.realtime.test_sockets import token


class Terminal:
    """`manage.py syncclient --device NAME` with its replica in the test's tmp_path: run in this
    process (call_command: a process of its own each time cost the suite a minute), or as a
    process of its own with `process=True`, as a person runs it (exit codes included)."""

    def __init__(self, name: str, *, web: str, key: str, state_dir):
        self.name, self.web, self.key, self.state_dir = name, web, key, state_dir

    def run(self, *args: str, expect: int = 0, server: str | None = None, process: bool = False) -> str:
        argv = ["syncclient", "--device", self.name, "--state-dir", str(self.state_dir), "--server",
                server or self.web, "--token", self.key, *args]
        if process:
            started = helpers.manage(*argv)
            out, err = started.communicate(timeout=120)
            code = started.returncode
        else:
            out, err, code = io.StringIO(), io.StringIO(), 0
            try:
                call_command(*argv, stdout=out, stderr=err)
            except CommandError as exc:
                err.write(f"{exc}\n")
                code = exc.returncode
            out, err = out.getvalue(), err.getvalue()
        assert code == expect, f"syncclient {args}: exit {code}\n{out}\n{err}"
        return out + err

    def listed(self) -> dict[str, str]:
        """{id prefix: the rest of the line} of `list`."""
        lines = [line for line in self.run("list").splitlines() if line and line != "no todos"]
        return {line[:8]: line[9:] for line in lines}


@pytest.fixture
def terminals(synced, user_factory, tmp_path):
    alice = user_factory()
    key = token(alice)
    return alice, [Terminal(name, web=synced, key=key, state_dir=tmp_path / "devices") for name in ("laptop", "desktop")]


def converged(devices, expected: dict[str, str]) -> None:
    """Sync the devices until each lists `expected`: what one pushed reaches the others through
    the coordinator and the sink a moment after its push was confirmed (eventual consistency)."""
    helpers.wait_until(lambda: all(d.run("sync") and d.listed() == expected for d in devices), timeout=30,
                       what=f"the devices to list {expected}")


def written(user) -> dict[str, str]:
    return {str(s.id)[:8]: s.title for s in TodoState.objects.filter(owner=user, deleted=False)}


def test_two_terminals_edit_offline_and_converge(terminals):
    alice, (laptop, desktop) = terminals
    assert "synced: 0 changes pushed" in laptop.run("sync")
    laptop.run("add", "Buy milk", "--priority", "high")  # offline: nothing is sent
    laptop.run("add", "Call mum")
    assert all(line.startswith("* ") for line in laptop.listed().values()), "both shown, both pending"
    assert "2 pending changes" in laptop.run("status")
    assert "synced: 2 changes pushed" in laptop.run("sync")
    assert written(alice) == {prefix: line.split("] ", 1)[1].rsplit(" (", 1)[0]
                              for prefix, line in laptop.listed().items()}
    converged([desktop], laptop.listed())

    milk = next(prefix for prefix, line in laptop.listed().items() if "milk" in line)
    mum = next(prefix for prefix, line in laptop.listed().items() if "mum" in line)
    desktop.run("edit", milk, "--title", "Buy oat milk")  # both offline
    laptop.run("complete", milk)
    laptop.run("delete", mum)
    desktop.run("sync"), laptop.run("sync")
    converged([desktop, laptop], {milk: "   [x] Buy oat milk (high)"})
    assert written(alice) == {milk: "Buy oat milk"}


def test_a_conflict_is_shown_and_resolved_from_the_terminal(terminals):
    alice, (laptop, desktop) = terminals
    SyncSettings.objects.create(user=alice, conflict_policy="manual")
    laptop.run("add", "Plan the trip")
    laptop.run("sync")
    converged([desktop], laptop.listed())
    [trip] = laptop.listed()
    laptop.run("edit", trip, "--title", "Trip to Rome")
    desktop.run("edit", trip, "--title", "Trip to Oslo")
    laptop.run("sync")
    said = desktop.run("sync")
    assert "conflict" in said and "resolve" in said
    status = desktop.run("status")
    assert "1 open conflicts" in status and "'Trip to Oslo' (this change) vs 'Trip to Rome' (kept)" in status
    conflict = status.split("conflict ", 2)[-1][:8]
    assert "resolved" in desktop.run("resolve", conflict, "Trip to Porto")
    converged([desktop, laptop], {trip: "   [ ] Trip to Porto (medium)"})
    assert "0 open conflicts" in laptop.run("status")


def test_bad_input_and_no_server_are_one_clear_line(terminals):
    _, (laptop, _) = terminals
    # As a person runs it, a process of its own: one line on stderr, and the exit code.
    assert "no todo whose id starts with" in laptop.run("complete", "ffffffff", expect=1, process=True)
    assert "a title has 1 to 200 characters" in laptop.run("add", "x" * 201, expect=1)
    assert "cannot reach" in laptop.run("sync", server=f"http://127.0.0.1:{helpers.free_port()}", expect=2,
                                        process=True)
    laptop.run("add", "kept offline")
    assert "1 pending changes" in laptop.run("status"), "a failed sync loses nothing"
