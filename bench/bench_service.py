"""(8) The run service (normviz/service.py) on this machine's cores: scaling, a class, memory.

- Scaling: K = 1, 2, 4 distinct uncached default runs (Activations, Running statistics) submitted at once;
  throughput against K = 1, and the time of 2 at once against 1 alone (target: within 1.3x on 2 cores).
- A class: followers arriving over a minute, each with its own spec (a seed of its own), half of them changing
  a setting once mid-run; p50/p95 time to the first frame (a partial result or the queue notice) and to the
  final result, against the ideal: the workers' CPU seconds divided by the cores.
- Memory: peak RSS of this process plus its workers while 10 sessions train (psutil over the process tree).

    python -m bench --only service [--quick]
    python -m bench.bench_service --parts scaling        # one part, full size
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from bench.common import Row
from normviz.experiments import activations, running_stats
from normviz.service import RunService

WORKLOADS = {
    "Activations": (activations.run, activations.ActivationsSpec()),
    "Running statistics": (running_stats.run, running_stats.RunningStatsSpec()),
}
POLL = 0.25  # how often a page's fragment asks for the latest result
_seeds = iter(range(1000, 10**9))  # every run of the benchmark is a new, uncached spec


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def wait_all(handles, poll: float = 0.01) -> None:
    while any(h.status().state in ("queued", "running") for h in handles):
        time.sleep(poll)


def at_once(svc: RunService, name: str, k: int) -> tuple[float, float]:
    """Wall seconds until k distinct runs of the workload, submitted together, have all finished, and the
    workers' CPU seconds per run (which a busy machine does not inflate, unlike the wall time)."""
    run, spec = WORKLOADS[name]
    cpu, start = worker_cpu(svc), time.perf_counter()
    handles = [svc.submit(spec.replace(seed=next(_seeds)), run, follower=None) for _ in range(k)]
    wait_all(handles)
    elapsed = time.perf_counter() - start
    assert all(h.status().state == "done" for h in handles), [h.status() for h in handles]
    return elapsed, (worker_cpu(svc) - cpu) / k


def scaling(svc: RunService, quick: bool) -> list[Row]:
    ks, repeats = ((1, 2), 1) if quick else ((1, 2, 4), 2)
    rows = []
    for name in WORKLOADS:
        at_once(svc, name, svc.workers)  # warm-up: every worker has loaded the data and run the code once
        best = {k: min(at_once(svc, name, k) for _ in range(repeats)) for k in ks}
        for k in ks[1:]:
            ratio = best[k][0] / best[1][0]
            rows.append(
                Row(
                    f"(8) service, {name} default: {k} at once vs 1",
                    f"{best[k][0]:.2f} s",
                    f"{best[1][0]:.2f} s",
                    f"{ratio:.2f}x time, {k / ratio:.2f}x throughput",
                    "<= 1.3x time" if k == 2 else "",
                    ratio <= 1.3 if k == 2 else None,
                    f"{svc.workers} worker processes, best of {repeats}; worker CPU per run {best[k][1]:.2f} s "
                    f"vs {best[1][1]:.2f} s alone; load average {os.getloadavg()[0]:.1f}",
                )
            )
    return rows


class Follower:
    """One simulated browser session: submits its spec, polls like the page's fragment, maybe moves a slider."""

    def __init__(self, svc: RunService, name: str, delay: float, change_after: float | None):
        self.svc, self.name, self.delay, self.change_after = svc, name, delay, change_after
        self.first_frame = self.final = None
        self.thread = threading.Thread(target=self.session)

    def submit(self):
        run, spec = WORKLOADS["Activations"]
        return self.svc.submit(spec.replace(seed=next(_seeds)), run, follower=self.name), time.perf_counter()

    def session(self):
        time.sleep(self.delay)
        handle, submitted = self.submit()
        changed = self.change_after is None
        while True:
            status, latest = handle.status(), handle.latest()
            now = time.perf_counter()
            if self.first_frame is None and (status.state == "queued" or latest is not None):
                self.first_frame = now - submitted
            if status.state == "done":
                self.final = now - submitted
                return
            if status.state in ("failed", "cancelled"):
                raise RuntimeError(f"{self.name}: {status}")
            if not changed and now - submitted >= self.change_after:  # a slider moves: a new spec, a new clock
                handle, submitted, changed = *self.submit(), True
                self.first_frame = None
            time.sleep(POLL)


def worker_cpu(svc: RunService) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in svc.worker_pids())


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


@dataclass
class ClassRun:
    """One simulated class: its sessions (their times to first frame and to result), its wall and worker CPU seconds."""

    followers: list[Follower]
    workers: int  # the service's slots
    spread: float  # seconds over which the sessions arrived
    wall: float  # from the start until every session had its result
    cpu: float  # the workers' CPU seconds meanwhile


def simulate_class(svc: RunService, n: int, spread: float, cpu: Callable[[], float] | None = None) -> ClassRun:
    """n sessions arriving over `spread` seconds (the same arrivals for the same n and spread), half of them
    changing a setting once mid-run; `cpu` reads the workers' CPU seconds (default: the service's worker pids)."""
    cpu = cpu or (lambda: worker_cpu(svc))
    rng = random.Random(0)
    followers = [
        Follower(svc, f"student{i}", rng.uniform(0, spread), rng.uniform(0.3, 2.0) if i % 2 else None) for i in range(n)
    ]
    cpu0, start = cpu(), time.perf_counter()
    for f in followers:
        f.thread.start()
    for f in followers:
        f.thread.join()
    return ClassRun(followers, svc.workers, spread, time.perf_counter() - start, cpu() - cpu0)


def class_rows(sim: ClassRun, prefix: str = "(8) a class") -> list[Row]:
    first = [f.first_frame for f in sim.followers]
    final = [f.final for f in sim.followers]
    slots = min(cores(), sim.workers)
    ideal = sim.cpu / slots
    last_arrival = max(f.delay for f in sim.followers)
    note = f"{len(sim.followers)} sessions over {sim.spread:.0f} s, half change a setting once; {sim.workers} workers"
    return [
        Row(
            f"{prefix}: time to first frame p50 / p95",
            f"{percentile(first, 50):.2f} / {percentile(first, 95):.2f} s",
            "",
            "",
            "p95 < 1 s",
            percentile(first, 95) < 1.0,
            note,
        ),
        Row(
            f"{prefix}: time to final result p50 / p95",
            f"{percentile(final, 50):.2f} / {percentile(final, 95):.2f} s",
            f"ideal {ideal:.1f} s",
            f"{percentile(final, 95) / ideal:.2f}x",
            "p95 <= 1.2x ideal",
            percentile(final, 95) <= 1.2 * ideal,
            f"ideal: the workers' CPU ({sim.cpu:.1f} s, cancelled runs included) over {slots} cores; "
            f"all done {sim.wall:.1f} s after the start, last arrival at {last_arrival:.1f} s",
        ),
    ]


def a_class(svc: RunService, quick: bool) -> list[Row]:
    n, spread = (10, 15.0) if quick else (30, 60.0)
    return class_rows(simulate_class(svc, n, spread))


def tree_rss() -> int:
    me = psutil.Process()
    total = 0
    for p in [me] + me.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def memory(svc: RunService) -> list[Row]:
    peak, stop = [tree_rss()], threading.Event()

    def sample():
        while not stop.wait(0.05):
            peak.append(tree_rss())

    sampler = threading.Thread(target=sample)
    sampler.start()
    handles = []
    for i in range(10):
        run, spec = WORKLOADS[list(WORKLOADS)[i % 2]]
        handles.append(svc.submit(spec.replace(seed=next(_seeds)), run, follower=f"session{i}"))
    wait_all(handles, POLL)
    stop.set()
    sampler.join()
    return [
        Row(
            "(8) peak RSS, server + workers, 10 sessions",
            f"{max(peak) / 2**30:.2f} GB",
            f"{peak[0] / 2**30:.2f} GB before",
            "",
            "< 2.5 GB",
            max(peak) < 2.5 * 2**30,
            f"{svc.workers} workers; 5 Activations + 5 Running statistics defaults",
        )
    ]


PARTS = {"scaling": scaling, "class": a_class, "memory": lambda svc, quick: memory(svc)}


def run(quick: bool = False, parts: tuple[str, ...] = tuple(PARTS)) -> list[Row]:
    start = time.perf_counter()
    svc = RunService(cores(), processes=True, cache=None)
    svc.worker_pids()  # wait for the workers to start (each imports torch)
    rows = [Row("(8) service start: worker processes ready", f"{time.perf_counter() - start:.1f} s", note="spawn")]
    try:
        for part in parts:
            rows += PARTS[part](svc, quick)
    finally:
        svc.shutdown()
    return rows


if __name__ == "__main__":
    from normviz.runtime import configure_torch

    ap = argparse.ArgumentParser(prog="python -m bench.bench_service", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of: {', '.join(PARTS)}")
    args = ap.parse_args()
    configure_torch()
    for row in run(args.quick, tuple(p.strip() for p in args.parts.split(","))):
        print(f"{row.name}: {row.value} | {row.baseline} | {row.ratio} | {row.target} {row.met} | {row.note}")
