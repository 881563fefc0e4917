"""Run one role and restart it when it exits, with capped exponential backoff, as a supervisor
does in production (compose's `restart: unless-stopped`, a Kubernetes Deployment, systemd's
`Restart=always`). `make run` starts every role under it, so one role that dies (a bug, a poison
message past its limits, a dependency gone for longer than its patience) is restarted while the
others keep serving, instead of the process manager stopping them all.

    python -m polystack.ops.supervise --name relay -- python manage.py runrelay

SIGTERM or SIGINT stops the role (the signal is passed on) and the supervisor with it. The wait
between restarts doubles from --backoff up to --max-backoff, and starts again from --backoff once
the role has run for --healthy seconds. On Linux, a supervisor that dies itself (SIGKILL, OOM)
takes its role with it (SIGTERM): a role left running unsupervised would be a second relay or
consumer once the supervisor is started again.
"""
import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time


def say(name: str, text: str) -> None:
    print(f"[supervise] {name}: {text}", file=sys.stderr, flush=True)


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def _dies_with(parent: int):
    """For Popen's preexec_fn (run in the child before exec; the supervisor has no other
    thread): SIGTERM the child when `parent` dies, or at once if it died already."""

    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here: the child only calls it

    def arrange() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the line above
            signal.raise_signal(signal.SIGTERM)

    return arrange


def supervise(command: list[str], *, name: str, backoff: float, max_backoff: float, healthy: float) -> int:
    stopping = threading.Event()
    child: subprocess.Popen | None = None

    def on_signal(signum, frame):
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    wait = backoff
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command, preexec_fn=_dies_with(os.getpid()))
        code = child.wait()
        if stopping.is_set():
            return code
        ran = time.monotonic() - started
        if ran >= healthy:
            wait = backoff
        say(name, f"exited with {code} after {ran:.1f} s; restarting in {wait:g} s")
        if stopping.wait(wait):
            return code
        wait = min(wait * 2, max_backoff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="role")
    parser.add_argument("--backoff", type=float, default=1.0, help="first wait before a restart, in seconds")
    parser.add_argument("--max-backoff", type=float, default=30.0)
    parser.add_argument("--healthy", type=float, default=60.0, help="a run this long resets the backoff")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the role's command after --")
    return supervise(command, name=args.name, backoff=args.backoff, max_backoff=args.max_backoff, healthy=args.healthy)


if __name__ == "__main__":
    sys.exit(main())
