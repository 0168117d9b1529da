"""(9) The run service on a Ray cluster (RunService(ray_address=...), normviz/ray_pool.py) on this machine.

- Scaling: bench_service's class simulation (sessions arriving over a few seconds, each with a spec of its own,
  half of them changing a setting once mid-run), uncached, through a cluster of 1 node and then of 2 nodes
  (one CPU each, tests/cluster.py's start_ray); throughput (finished runs per second of wall time, the same
  sessions and arrivals) of 2 nodes against 1 (target: 1.7x or more).
- Overhead: the time to the first frame (the first partial result handle.latest() shows) of one run on an
  otherwise idle service, on the warm 1-node cluster against a warm local worker process
  (RunService(workers=1, processes=True)), interleaved, median of several (target: Ray adds under 0.3 s);
  and the first run on a fresh cluster (cold: the Ray worker starts and imports the experiments).

    python -m bench --only ray [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil
import ray

from bench.bench_service import WORKLOADS, _seeds, at_once, class_rows, simulate_class, wait_all
from bench.common import Row
from normviz.service import RunService
from tests.cluster import RayCluster, start_ray


def first_frame(svc: RunService, poll: float = 0.005) -> float:
    """Seconds from submitting a new uncached run until handle.latest() shows its first partial result; then
    waits for the run's end, so that the service is idle again."""
    run, spec = WORKLOADS["Activations"]
    start = time.perf_counter()
    handle = svc.submit(spec.replace(seed=next(_seeds)), run, follower=None)
    while handle.latest() is None:
        if handle.status().state in ("failed", "cancelled"):
            raise RuntimeError(f"first_frame: {handle.status()}")
        time.sleep(poll)
    seconds = time.perf_counter() - start
    wait_all([handle])
    assert handle.status().state == "done", handle.status()
    return seconds


class RayWorkerCpu:
    """CPU seconds of a cluster's Ray worker processes (the raylets' children, not their agents), workers that
    exit included: a sampler keeps the last reading of each."""

    def __init__(self, cluster: RayCluster, every: float = 0.25):
        self.cluster, self.seen, self._stop = cluster, {}, threading.Event()
        self._sampler = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._sampler.start()

    def _workers(self) -> list[psutil.Process]:
        found = []
        for node in self.cluster.nodes:
            try:
                for p in psutil.Process(node.pid).children(recursive=True):
                    title = p.cmdline()[0] if p.cmdline() else ""
                    if title.startswith("ray::") and not title.endswith("Agent"):
                        found.append(p)
            except psutil.Error:
                pass
        return found

    def _sample(self, every: float) -> None:
        while not self._stop.wait(every):
            self()

    def __call__(self) -> float:
        for p in self._workers():
            try:
                self.seen[p.pid] = sum(p.cpu_times()[:2])
            except psutil.Error:
                pass
        return sum(self.seen.values())

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()


def on_cluster(folder: Path, nodes: int, work) -> tuple[float, object]:
    """Start a cluster of `nodes` one-CPU nodes, run work(svc, cluster) with a RunService on it, stop it all;
    the seconds the cluster took to start, and what work returned."""
    (folder / f"ray{nodes}").mkdir()
    start = time.perf_counter()
    cluster = start_ray(folder / f"ray{nodes}", nodes=nodes)
    started = time.perf_counter() - start
    try:
        svc = RunService(ray_address=cluster.address, cache=None)
        try:
            assert svc.workers == nodes, svc
            return started, work(svc, cluster)
        finally:
            svc.shutdown()
    finally:
        ray.shutdown()  # the next cluster's service joins its own cluster
        cluster.stop()


def throughput(svc: RunService, cluster: RayCluster, n: int, spread: float):
    at_once(svc, "Activations", svc.workers)  # every slot's worker has started and trained once
    cpu = RayWorkerCpu(cluster)
    try:
        return simulate_class(svc, n, spread, cpu)
    finally:
        cpu.stop()


def overhead(svc: RunService, repeats: int) -> tuple[float, list[float], list[float]]:
    """The cold first run on the fresh cluster, then warm Ray and warm local runs, interleaved."""
    cold = first_frame(svc)  # the service was created just now: its one Ray worker is starting
    local = RunService(1, processes=True, cache=None)
    try:
        local.worker_pids()
        first_frame(local)  # warm: the worker process has trained once
        on_ray, on_local = [], []
        for _ in range(repeats):
            on_ray.append(first_frame(svc))
            on_local.append(first_frame(local))
    finally:
        local.shutdown()
    return cold, on_ray, on_local


def run(quick: bool = False) -> list[Row]:
    n, spread, repeats = (8, 4.0, 5) if quick else (20, 8.0, 7)
    with tempfile.TemporaryDirectory(prefix="nvray-") as tmp:
        folder = Path(tmp)

        def one_node(svc, cluster):
            return overhead(svc, repeats), throughput(svc, cluster, n, spread)

        start1, ((cold, on_ray, on_local), one) = on_cluster(folder, 1, one_node)
        start2, two = on_cluster(folder, 2, lambda svc, cluster: throughput(svc, cluster, n, spread))

    rate1, rate2 = n / one.wall, n / two.wall
    ratio = rate2 / rate1
    ray_med, local_med = statistics.median(on_ray), statistics.median(on_local)
    added = ray_med - local_med

    return [
        Row(
            "(9) Ray: class throughput, 2 nodes vs 1",
            f"{rate2 * 60:.1f} runs/min",
            f"{rate1 * 60:.1f} runs/min",
            f"{ratio:.2f}x",
            ">= 1.7x",
            ratio >= 1.7,
            f"{n} sessions over {spread:.0f} s, half change a setting once, uncached; all done in {two.wall:.1f} s "
            f"vs {one.wall:.1f} s; Ray workers' CPU {two.cpu:.1f} s vs {one.cpu:.1f} s; "
            f"clusters started in {start2:.0f} s / {start1:.0f} s",
        ),
        *class_rows(one, "(9) Ray, 1 node, a class"),
        *class_rows(two, "(9) Ray, 2 nodes, a class"),
        Row(
            "(9) Ray: time to first frame, one run, warm",
            f"{ray_med:.3f} s",
            f"{local_med:.3f} s local",
            f"+{added:.3f} s",
            "< +0.3 s",
            added < 0.3,
            f"median of {repeats}, interleaved; Ray {min(on_ray):.3f}-{max(on_ray):.3f} s, "
            f"local worker process {min(on_local):.3f}-{max(on_local):.3f} s; 1-node cluster",
        ),
        Row(
            "(9) Ray: time to first frame, first run on a fresh cluster (cold)",
            f"{cold:.2f} s",
            f"{ray_med:.3f} s warm",
            f"{cold / ray_med:.0f}x",
            note="submitted as the service starts: includes the Ray worker's start and imports",
        ),
    ]
