"""(7) The torch thread setting for a 2-core machine shared by several browser sessions: one run alone
with 1 or 2 intra-op threads, and two runs at once in two Python threads of one process (as two
Streamlit sessions are), with 1 or 2 threads. normviz/runtime.py's choice rests on these numbers.

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
from normviz.runtime import THREADS_PER_RUN

WORKLOADS: dict[str, Callable[[], object]] = {
    "Activations default": lambda: final(activations.run(activations.ActivationsSpec())),
    "init sweep, 4 epochs": lambda: final(init_sweep.run(init_sweep.InitSweepSpec(epochs=4))),
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
        for name, fn in WORKLOADS.items():
            fn()  # warm-up
            best = {}
            for _ in range(repeats):
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    for n in (1, 2):
                        seconds = together(fn, n)
                        best[threads, n] = min(best.get((threads, n), float("inf")), seconds)
            rows.append(Row(f"(7) {name}: one run, 1 vs 2 torch threads", f"{best[1, 1]:.2f} s",
                            f"{best[2, 1]:.2f} s", f"{best[2, 1] / best[1, 1]:.2f}x", "", None))
            rows.append(Row(f"(7) {name}: two runs at once, 1 vs 2 threads", f"{best[1, 2]:.2f} s",
                            f"{best[2, 2]:.2f} s", f"{best[2, 2] / best[1, 2]:.2f}x", "", None,
                            "wall time until both finish"))
    finally:
        torch.set_num_threads(THREADS_PER_RUN)
    return rows
