"""The chaos suite's short run (`python -m chaos --short`), as `make test` has it: on a stack of
its own (so crashing its broker, PostgreSQL and Redis touches no other test), one fault of each
kind under a few hundred commands, and every invariant of the checker held."""
import subprocess
import sys

import pytest

from tests.helpers import ROOT

FAULTS = ("SIGKILL the only broker", "SIGKILL relay", "SIGKILL consumer-notifications", "SIGKILL consumer-sync",
          "Redis crashed", "PostgreSQL crashed", "relay frozen (SIGSTOP)")
INVARIANTS = ("its events once, in version order", "no request answered 500", "equals a fresh replay",
              "every socket caught up", "no notification sent twice", "each reminder fired once",
              "`analytics verify` agrees", "device-sync-events exactly once")


@pytest.mark.timeout(900)  # about two and a half minutes; beside the rest of the suite, more
def test_every_invariant_holds_through_one_fault_of_each_kind():
    run = subprocess.run([sys.executable, "-m", "chaos", "--short"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    table = report[report.index("Faults injected"):]
    for fault in FAULTS:
        assert f"| {fault}" in table, (fault, report)
    for invariant in INVARIANTS:
        assert any(invariant in line and "| yes " in line for line in table.splitlines()), (invariant, report)
    assert "every invariant held" in report
