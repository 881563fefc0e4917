"""Run the benchmarks: `python -m bench [name ...]` (all by default). Needs the local stack."""
import importlib
import os
import sys

import django

BENCHMARKS = {
    "runner": "bench.runner_overhead",
}


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "polystack.settings.test")
    django.setup()
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n== {name} ==", flush=True)
        importlib.import_module(BENCHMARKS[name]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
