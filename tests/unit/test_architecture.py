"""The import contract (.importlinter) holds, and a wrong import breaks it."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", "--config", str(root / ".importlinter")], cwd=root,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(root)})


def test_the_tree_keeps_the_contract():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("module", "wrong"), [
    ("apps/todos/models.py", "from apps.projections import selectors"),  # the write side reading the read side
    ("apps/notifications/models.py", "from apps.realtime import sockets"),  # two features, independent
    ("apps/projections/models.py", "from apps.web import pages"),  # the page shell, which no app imports
    ("polystack/db.py", "import apps.todos.events"),  # the kernel
])
def test_a_wrong_import_breaks_the_contract(tmp_path, module, wrong):
    for part in ("apps", "polystack", ".importlinter"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "static", "templates"))
        else:
            shutil.copy(source, tmp_path / part)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{wrong}  # noqa\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
