"""(10) The run service on a Ray cluster (RunService(ray_address=...), normviz/ray_pool.py) on this machine.

- Scaling: bench_service's class simulation (sessions arriving over a few seconds, each with a spec of its own,
  half of them changing a setting once mid-run), uncached, through a cluster of 1 node and then of 2 nodes
  (one CPU each, tests/cluster.py's start_ray), alternately, twice; throughput (finished runs per second of wall
  time, the same sessions and arrivals; the best round of each) of 2 nodes against 1 (target: 1.7x or more).
  Its note adds the CPUs the Ray workers kept busy (their CPU seconds over the wall time: a slower or faster
  machine between the rounds does not move it) and the CPU that other processes took meanwhile.
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

from bench.bench_service import WORKLOADS, ClassRun, _seeds, at_once, class_rows, simulate_class, wait_all
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


class ClusterCpu:
    """CPU seconds of a cluster's processes, those that exit included (a sampler keeps the last reading of each):
    its Ray workers (called: the raylets' ray:: children but their agents) or all of them (total)."""

    def __init__(self, cluster: RayCluster, every: float = 0.25):
        self.cluster, self.seen, self._stop = cluster, {}, threading.Event()  # pid -> (CPU seconds, a worker)
        self._sampler = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._sampler.start()

    def _read(self) -> None:
        for node in self.cluster.nodes:
            try:
                processes = [psutil.Process(node.pid)] + psutil.Process(node.pid).children(recursive=True)
            except psutil.Error:
                continue
            for p in processes:
                try:
                    title = p.cmdline()[0] if p.cmdline() else ""
                    worker = title.startswith("ray::") and not title.endswith("Agent")
                    self.seen[p.pid] = (sum(p.cpu_times()[:2]), worker)
                except psutil.Error:
                    pass

    def _sample(self, every: float) -> None:
        while not self._stop.wait(every):
            self._read()

    def __call__(self) -> float:
        self._read()
        return sum(cpu for cpu, worker in self.seen.values() if worker)

    def total(self) -> float:
        self._read()
        return sum(cpu for cpu, _ in self.seen.values())

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()


def busy_cpu() -> float:
    """CPU seconds this machine has spent on anything since it started."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - t.iowait


def on_cluster(folder: Path, nodes: int, work) -> tuple[float, object]:
    """Start a cluster of `nodes` one-CPU nodes, run work(svc, cluster) with a RunService on it, stop it all;
    the seconds the cluster took to start, and what work returned."""
    folder = Path(tempfile.mkdtemp(prefix=f"{nodes}n", dir=folder))  # each cluster its own ray.log
    start = time.perf_counter()
    cluster = start_ray(folder, nodes=nodes)
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


def throughput(svc: RunService, cluster: RayCluster, n: int, spread: float) -> tuple[ClassRun, float]:
    """The class on this cluster, and the CPU seconds that processes other than the cluster's and this one's
    took meanwhile (another user's tests, say: a disturbed measurement)."""
    at_once(svc, "Activations", svc.workers)  # every slot's worker has started and trained once
    cpu, me = ClusterCpu(cluster), psutil.Process()
    try:
        before = busy_cpu() - cpu.total() - sum(me.cpu_times()[:2])
        sim = simulate_class(svc, n, spread, cpu)
        return sim, busy_cpu() - cpu.total() - sum(me.cpu_times()[:2]) - before
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
    n, spread, repeats, rounds = (8, 3.0, 5, 1) if quick else (20, 4.0, 7, 2)
    classes: dict[int, list[tuple[ClassRun, float]]] = {1: [], 2: []}  # nodes -> (class, others' CPU) by round
    starts: list[float] = []
    first_frames = None  # (cold, warm on Ray, warm local), measured in the first round
    with tempfile.TemporaryDirectory(prefix="nvray-") as tmp:
        for round_ in range(rounds):  # 1 node, 2 nodes, 1 node, ...: a change of the machine's pace hits both

            def one_node(svc, cluster, first=round_ == 0):
                return (overhead(svc, repeats) if first else None), throughput(svc, cluster, n, spread)

            started, (measured, measured_class) = on_cluster(Path(tmp), 1, one_node)
            first_frames = first_frames or measured
            classes[1].append(measured_class)
            starts.append(started)
            started, measured_class = on_cluster(Path(tmp), 2, lambda svc, c: throughput(svc, c, n, spread))
            classes[2].append(measured_class)
            starts.append(started)

    cold, on_ray, on_local = first_frames
    one, two = (min((sim for sim, _ in classes[k]), key=lambda c: c.wall) for k in (1, 2))  # best of the rounds
    rate1, rate2 = n / one.wall, n / two.wall
    ratio = rate2 / rate1
    busy1, busy2 = one.cpu / one.wall, two.cpu / two.wall  # CPUs kept busy: the same for any pace of the machine
    ray_med, local_med = statistics.median(on_ray), statistics.median(on_local)
    added = ray_med - local_med
    walls = {k: " / ".join(f"{sim.wall:.1f}" for sim, _ in classes[k]) for k in (1, 2)}
    others = {k: " / ".join(f"{other:.1f}" for _, other in classes[k]) for k in (1, 2)}

    return [
        Row(
            "(10) Ray: class throughput, 2 nodes vs 1",
            f"{rate2 * 60:.1f} runs/min",
            f"{rate1 * 60:.1f} runs/min",
            f"{ratio:.2f}x",
            ">= 1.7x",
            ratio >= 1.7,
            f"{n} sessions over {spread:.0f} s, half change a setting once, uncached; best of {rounds} rounds, "
            f"all done in {walls[2]} s vs {walls[1]} s; Ray workers' CPU {two.cpu:.1f} s vs {one.cpu:.1f} s, "
            f"{busy2:.2f} vs {busy1:.2f} CPUs busy ({busy2 / busy1:.2f}x); "
            f"other processes' CPU meanwhile {others[2]} s vs {others[1]} s (0 on a quiet machine); "
            f"clusters started in {max(starts):.0f} s at most",
        ),
        *class_rows(one, "(10) Ray, 1 node, a class"),
        *class_rows(two, "(10) Ray, 2 nodes, a class"),
        Row(
            "(10) Ray: time to first frame, one run, warm",
            f"{ray_med:.3f} s",
            f"{local_med:.3f} s local",
            f"+{added:.3f} s",
            "< +0.3 s",
            added < 0.3,
            f"median of {repeats}, interleaved; Ray {min(on_ray):.3f}-{max(on_ray):.3f} s, "
            f"local worker process {min(on_local):.3f}-{max(on_local):.3f} s; 1-node cluster",
        ),
        Row(
            "(10) Ray: time to first frame, first run on a fresh cluster (cold)",
            f"{cold:.2f} s",
            f"{ray_med:.3f} s warm",
            f"{cold / ray_med:.0f}x",
            note="submitted as the service starts: includes the Ray worker's start and imports",
        ),
    ]
