"""Run the benchmarks: `python -m bench [NAME ...]` (`make bench BENCH_ARGS=NAME`).

Every module in this folder with a `main()` is a benchmark; each prints its own table,
with its baseline measured in the same run.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import time
from pathlib import Path


def _benchmarks() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    available = _benchmarks()
    chosen = argv or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    failures = 0
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        runner = getattr(module, "main", None)
        if runner is None:
            continue
        print(f"\n=== bench.{name}")
        started = time.perf_counter()
        if inspect.signature(runner).parameters:
            rc = runner([])
        else:  # a benchmark that reads its own options from sys.argv: give it none
            saved, sys.argv = sys.argv, [f"bench.{name}"]
            try:
                rc = runner()
            finally:
                sys.argv = saved
        print(f"=== bench.{name}: exit {rc} after {time.perf_counter() - started:.1f}s")
        failures += int(bool(rc))  # None (no exit code) counts as success
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
