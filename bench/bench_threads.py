"""(7) The torch thread setting for a 2-core machine shared by several browser sessions: one run alone
with 1 or 2 intra-op threads, and two runs at once in two Python threads of one process (as two
Streamlit sessions are), with 1 or 2 threads. normviz/runtime.py's choices (one thread per run; the init
sweep's SpareCore) rest on these numbers.

    python -m bench --only threads
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch

from bench.common import Row
from normviz.experiments import activations, init_sweep
from normviz.runs import final
from normviz.runtime import THREADS_PER_RUN, SpareCore

WORKLOADS: dict[str, Callable[[], object]] = {
    "Activations default": lambda: final(activations.run(activations.ActivationsSpec())),
    # on the thread count set here: a SpareCore without readings keeps the count it starts with
    "init sweep, 4 epochs": lambda: final(
        init_sweep.run(init_sweep.InitSweepSpec(epochs=4), SpareCore(count=lambda: None))
    ),
}


def together(fn: Callable[[], object], n: int) -> float:
    """Wall time until n copies of fn, started at once in n threads, have all finished."""

    def session():  # as app.py does in every script thread (the flag is per thread)
        torch.set_flush_denormal(True)
        fn()

    threads = [threading.Thread(target=session) for _ in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def run(quick: bool = False) -> list[Row]:
    repeats = 1 if quick else 3
    rows = []
    try:
        best: dict[tuple[str, int, int], float] = {}
        for fn in WORKLOADS.values():
            fn()  # warm-up
        # all single runs before any two-at-once: two runs of two threads each leave more OpenMP workers than
        # cores in this process, and libgomp then stops spinning, which slowed every later two-thread run
        # (python -m bench runs each benchmark in a process of its own for the same reason)
        for _ in range(repeats):
            for n in (1, 2):
                for name, fn in WORKLOADS.items():
                    for threads in (1, 2):
                        torch.set_num_threads(threads)
                        key = (name, threads, n)
                        best[key] = min(best.get(key, float("inf")), together(fn, n))
        for name in WORKLOADS:
            one, two = best[name, 1, 1], best[name, 2, 1]
            rows.append(
                Row(
                    f"(7) {name}: one run, 1 vs 2 torch threads",
                    f"{one:.2f} s",
                    f"{two:.2f} s",
                    f"{two / one:.2f}x",
                    "",
                    None,
                )
            )
            one, two = best[name, 1, 2], best[name, 2, 2]
            rows.append(
                Row(
                    f"(7) {name}: two runs at once, 1 vs 2 threads",
                    f"{one:.2f} s",
                    f"{two:.2f} s",
                    f"{two / one:.2f}x",
                    "",
                    None,
                    "wall time until both finish",
                )
            )
    finally:
        torch.set_num_threads(THREADS_PER_RUN)
    return rows
