"""`make run` keeps serving when one role dies: every role runs under a supervisor that restarts it
with backoff, and stops it cleanly on SIGTERM."""
import signal
import subprocess
import sys

from django.core.management import call_command

from tests.helpers import ROOT, wait_until

ROLE = """
import pathlib, signal, sys
starts = pathlib.Path(sys.argv[1])
starts.write_text(starts.read_text() + "x" if starts.exists() else "x")
if len(starts.read_text()) < 3:
    sys.exit(1)  # dies twice, as a role that meets a poison message or a missing dependency
signal.pause()  # then runs until stopped, as a healthy role does
"""


def test_a_role_that_exits_is_restarted_with_backoff_and_sigterm_stops_it(tmp_path):
    starts = tmp_path / "starts"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "polystack.ops.supervise", "--name", "flaky", "--backoff", "0.1", "--",
         sys.executable, "-c", ROLE, str(starts)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: starts.exists() and starts.read_text() == "xxx", what="two restarts")
        assert supervisor.poll() is None, "the supervisor keeps the role up"
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(10)
        log = supervisor.stderr.read()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert "flaky: exited with 1" in log and "restarting in 0.1 s" in log and "restarting in 0.2 s" in log
    assert subprocess.run(["pgrep", "-f", str(starts)], capture_output=True).returncode == 1, "the role is gone too"


def test_a_supervisor_killed_takes_its_role_with_it(tmp_path):
    """SIGKILL leaves the supervisor no time to pass anything on: the kernel's parent-death signal
    stops the role, which would otherwise run on unsupervised beside the next supervisor's."""
    starts = tmp_path / "starts"
    starts.write_text("xx")  # the role's third start: it runs until stopped
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "polystack.ops.supervise", "--name", "orphan", "--", sys.executable, "-c", ROLE,
         str(starts)], cwd=ROOT)
    try:
        wait_until(lambda: starts.read_text() == "xxx", what="the role started")
        supervisor.kill()
        supervisor.wait(10)
        wait_until(lambda: subprocess.run(["pgrep", "-f", str(starts)], capture_output=True).returncode == 1,
                   what="the role to stop with its supervisor")
    finally:
        subprocess.run(["pkill", "-f", str(starts)])


def test_the_procfile_runs_every_role_under_the_supervisor(capsys):
    call_command("procfile", "--python", "py")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and all(" -m polystack.ops.supervise --name " in line for line in lines)
