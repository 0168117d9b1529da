"""Run the benchmark suite and print one table:

    python -m bench            # everything, about 15 minutes on 2 cores (ray: about 5)
    python -m bench --quick    # fewer repeats and shorter runs, to check that the suite works
    python -m bench --only init_sweep,telemetry

Each benchmark measures its baseline in the same run and prints the ratio. Timings are wall clock,
best of several interleaved repeats; run it on a quiet machine. The correctness side (the stacked
engine equals separate torch models) is tests/test_stacked.py, which CI runs.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench.common import Row, load_average, machine
from normviz.runtime import configure_torch

os.environ["NORMVIZ_WARM_UP"] = "0"  # measure runs and page loads uncached; no background training (normviz.warm)

SUITE = {  # name -> module with run(quick) -> list[Row]
    "init_sweep": "bench.bench_init_sweep",
    "momenta": "bench.bench_momenta",
    "telemetry": "bench.bench_telemetry",
    "pages": "bench.bench_pages",
    "memory": "bench.bench_memory",
    "threads": "bench.bench_threads",
    "service": "bench.bench_service",
    "cost": "bench.bench_cost",
    "ray": "bench.bench_ray",  # a local Ray cluster: requirements-cluster.txt
}
COLUMNS = ("benchmark", "measured", "baseline", "ratio", "target", "met", "note")


def table(rows: list[Row]) -> str:
    cells = [COLUMNS] + [
        (r.name, r.value, r.baseline, r.ratio, r.target, {True: "yes", False: "NO", None: ""}[r.met], r.note)
        for r in rows
    ]
    lines = ["| " + " | ".join(c) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("---" for _ in COLUMNS) + "|")
    return "\n".join(lines)


def isolated(name: str, quick: bool) -> list[Row] | None:
    """One benchmark in a process of its own (None if it failed). Threads that once ran torch on two
    threads leave OpenMP workers behind, and with more workers than cores libgomp stops spinning: in one
    process, a two-thread sweep ran 1.05 s instead of 0.60 s after the main thread had used two threads."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "bench", "--only", name, "--rows-to", str(out)] + (["--quick"] if quick else [])
        if subprocess.run(cmd).returncode != 0 or not out.exists():
            return None
        return [Row(**r) for r in json.loads(out.read_text())]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and shorter runs (checks the suite)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(SUITE)}")
    ap.add_argument("--rows-to", default="", help=argparse.SUPPRESS)  # set for the per-benchmark child process
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SUITE)
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(SUITE)}")
    configure_torch()
    if args.rows_to:  # a child process: one benchmark, its rows to a file
        rows = importlib.import_module(SUITE[names[0]]).run(quick=args.quick)
        Path(args.rows_to).write_text(json.dumps([asdict(r) for r in rows]))
        return 0
    print(f"normviz benchmarks, {datetime.date.today()}: {machine()}", flush=True)
    print(f"load average at start: {load_average()}", flush=True)
    rows, failed = [], []
    for name in names:
        start = time.perf_counter()
        print(f"... {name}", end="", flush=True)
        new = isolated(name, args.quick)
        if new is None:  # one broken benchmark must not hide the others' numbers
            failed.append(name)
            new = []
        print(f" {time.perf_counter() - start:.0f} s", flush=True)
        for r in new:  # as they come, in case the suite is stopped before the table
            print(f"    {r.name}: {r.value} | {r.baseline} | {r.ratio}", flush=True)
        rows += new
    print(f"load average at end: {load_average()}\n")
    print(table(rows))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
