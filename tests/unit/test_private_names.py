"""No private name of another module is used: not of an installed library (a patch release may
change it without a word), not of one of ours from outside it. Checked on the syntax tree of
every module of ours: `x._name` where x is not self or cls, `from m import _name`, and imports
of private modules. The exceptions are names their libraries document as public."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("apps", "polystack", "bench", "chaos", "tests")
DOCUMENTED = {
    "_meta",  # Django's Model _meta API (docs: "Model _meta API")
    "_replace",  # namedtuple._replace (urllib.parse results)
    "_exit",  # os._exit
}


def _documented(node: ast.Attribute) -> bool:
    # confluent-kafka's local error codes are public constants with a leading underscore
    # (KafkaError._TRANSPORT, ._MSG_TIMED_OUT, ...), as librdkafka names them.
    kafka_code = isinstance(node.value, ast.Name) and node.value.id == "KafkaError" and node.attr[1:].isupper()
    return node.attr in DOCUMENTED or kafka_code


def private_uses(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    where = path.relative_to(root)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            names = [alias.name for alias in node.names]
            if any(p.startswith("_") and not p.startswith("__") for p in parts + names):
                found.append(f"{where}:{node.lineno}: from {node.module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(p.startswith("_") and not p.startswith("__") for p in alias.name.split(".")):
                    found.append(f"{where}:{node.lineno}: import {alias.name}")
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
              and not _documented(node)):
            found.append(f"{where}:{node.lineno}: .{node.attr}")
    return found


def test_no_private_name_of_another_module_is_used():
    modules = [path for tree in TREES for path in (ROOT / tree).rglob("*.py") if "migrations" not in path.parts]
    assert len(modules) > 100
    found = [use for path in modules for use in private_uses(path)]
    assert not found, "private names used:\n" + "\n".join(found)


def test_the_check_finds_what_it_is_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from channels_redis.pubsub import _private\nimport x._y\nlayer._get_layer()\nself._ok()\n")
    uses = [use.split(": ", 1)[1] for use in private_uses(sample, tmp_path)]
    assert uses == ["from channels_redis.pubsub import _private", "import x._y", "._get_layer"]

