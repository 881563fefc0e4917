"""Find a running role of this system and stop it for a while, the way an operator would.

A role of this system is a process with the command line of that role (`manage.py runconsumer
<name>` with the same consumer group, the SMTP server on EMAIL_HOST:EMAIL_PORT) and the same
KAFKA_TOPIC_PREFIX as ours (several systems may share a machine: the chaos suite's
roles use a prefix of their own). Under `make run` each role runs under polystack.ops.supervise,
which would restart it within a second: to keep it down, the demo freezes the supervisor
(SIGSTOP), stops the role (SIGTERM: it leaves its group and commits, as in a deploy), and on
restart lets the supervisor go on (SIGCONT), which starts the role afresh. A role that runs
alone is paused (SIGSTOP) and resumed (SIGCONT) instead.
"""
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

SUPERVISOR = "polystack.ops.supervise"


class RoleNotFoundError(Exception):
    pass


def _argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def _stat(pid: int) -> tuple[str, int]:
    """(state letter, parent pid): the fields after the command name, which may hold spaces."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def runconsumer(consumer: str, group_id: str | None = None) -> tuple[str, Callable[[list[str]], bool]]:
    """`manage.py runconsumer <consumer>` with that --group-id (none: the registered group)."""

    def matches(argv: list[str]) -> bool:
        for i, arg in enumerate(argv[:-1]):
            if arg == "runconsumer" and argv[i + 1] == consumer and i > 0 and argv[i - 1].endswith("manage.py"):
                return _option(argv, "--group-id") == group_id
        return False

    return f"runconsumer {consumer}" + (f" --group-id {group_id}" if group_id else ""), matches


def mail_server() -> tuple[str, Callable[[list[str]], bool]]:
    """The local SMTP server of `make run` (its `mail` role, aiosmtpd) on EMAIL_HOST:EMAIL_PORT."""
    where = f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
    return f"aiosmtpd on {where}", lambda argv: "aiosmtpd" in argv and _option(argv, "-l") == where


@dataclass
class Role:
    name: str
    pid: int
    supervisor: int | None  # its polystack.ops.supervise process, if any
    argv: list[str]
    environ: dict[str, str]

    def option(self, name: str, env: str, default: str) -> str:
        """A command-line option of the role, else the environment variable it defaults to."""
        return _option(self.argv, name) or self.environ.get(env) or default

    @property
    def how(self) -> str:
        if self.supervisor:
            return f"pid {self.pid}, under its supervisor (pid {self.supervisor})"
        return f"pid {self.pid}, without a supervisor"

    def stop(self, timeout: float = 30.0) -> None:
        if self.supervisor is None:
            os.kill(self.pid, signal.SIGSTOP)
            return
        os.kill(self.supervisor, signal.SIGSTOP)
        try:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(self.pid):
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    deadline = float("inf")
                time.sleep(0.05)  # the poll interval of the process table
        except BaseException:
            os.kill(self.supervisor, signal.SIGCONT)
            raise

    def restart(self) -> None:
        os.kill(self.supervisor or self.pid, signal.SIGCONT)


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its (frozen) parent to collect it."""
    try:
        return _stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def find(role: tuple[str, Callable[[list[str]], bool]], *, timeout: float = 0.0) -> Role:
    """The one process of `role` (runconsumer(...), mail_server()) in this system, waiting up to
    `timeout` for it (a role just starting, or restarting); RoleNotFoundError if none or several."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _find(*role)
        except RoleNotFoundError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)  # the poll interval of a deadline wait


def _find(name: str, matches: Callable[[list[str]], bool]) -> Role:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            argv = _argv(pid)
            if SUPERVISOR in argv or not matches(argv):  # a supervisor's command line holds its role's
                continue
            environ = _environ(pid)
            if environ.get("KAFKA_TOPIC_PREFIX", "") != settings.KAFKA_TOPIC_PREFIX:
                continue
            parent = _stat(pid)[1]
            supervised = any(arg == SUPERVISOR for arg in _argv(parent))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not ours to read
        found.append(Role(name=name, pid=pid, supervisor=parent if supervised else None, argv=argv,
                          environ=environ))
    if not found:
        raise RoleNotFoundError(f"no `{name}` of this system is running: start it (make run)")
    if len(found) > 1:
        raise RoleNotFoundError(f"{len(found)} processes run `{name}` "
                                f"(pids {', '.join(str(r.pid) for r in found)}): the demo stops one role, not a fleet")
    return found[0]


def wait_restarted(role: Role, timeout: float, *, other_than: int | None = None) -> int:
    """The pid of the role's new process once its supervisor started it, other than `other_than`
    (default: the role's pid when found; the same pid when it was only paused)."""
    if role.supervisor is None:
        return role.pid
    old = other_than or role.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{role.supervisor}/task/{role.supervisor}/children").read_text().split()
        except OSError:
            raise RoleNotFoundError(f"the supervisor (pid {role.supervisor}) is gone") from None
        fresh = [int(pid) for pid in children if int(pid) != old and _alive(int(pid))]
        if fresh:
            return fresh[0]
        time.sleep(0.05)  # the poll interval of the process table
    raise RoleNotFoundError(f"the supervisor (pid {role.supervisor}) did not start {role.name} again "
                            f"within {timeout:.0f} s")
