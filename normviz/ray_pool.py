"""The run service's workers on a Ray cluster (NORMVIZ_RAY_ADDRESS=host:port, e.g. ray-head:6379).

Each run is one Ray task whose partial results stream back as a Ray streaming generator
(num_returns="streaming"), at the service's throttled rate and encoded as arrays and JSON. The service keeps
its own queue, sharing by Spec key, followers and cost cap; a slot here is one CPU of the cluster, so the
queue notice counts the cluster's CPUs. A cancelled run is a cancelled task (Ray raises in its worker; the
worker takes the next task); a worker that dies fails its run with the service's one line, and the run is
not retried by Ray (max_retries=0): the page offers Retry. Only normviz.service imports this module, and only
when the variable is set, so Ray stays an optional extra (requirements-cluster.txt).

Every node must import the same `normviz` (the deploy/ image sets PYTHONPATH=/app). A task is named by its
Spec (`task_name`), which `ps` shows on the node as its worker's title: "ray::normviz:ActivationsSpec:3fa2c1d09b7e".
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import os
import queue
import socket
import threading

import ray
from ray.exceptions import RayError, TaskCancelledError

log = logging.getLogger(__name__)


def task_name(key: str) -> str:
    """The Spec's class and a digest of its settings: one name per run."""
    return f"normviz:{key.split(':', 1)[0]}:{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def connect(address: str) -> int:
    """Join the cluster (once per process); how many CPUs it offers now. Raises ConnectionError at once when
    nothing listens at the address (ray.init would retry for a minute while the first page waits)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"nothing answers at {address!r} ({exc})") from exc
    if not ray.is_initialized():
        ray.init(address=address, namespace="normviz", log_to_driver=False, logging_level=logging.WARNING)
    return max(1, cluster_cpus())  # a cluster with no CPU yet still gets a slot: its run waits in Ray's queue


def cluster_cpus() -> int:
    """How many CPUs the cluster offers now (nodes join and leave)."""
    return int(ray.cluster_resources().get("CPU", 0))


@ray.remote(num_cpus=1, max_retries=0)
def _ready_task() -> int:
    """Starts a worker and imports every experiment in it before the first run waits for them; its pid."""
    from normviz import runtime, worker

    runtime.configure_torch()
    worker.preload_experiments()
    return os.getpid()


@ray.remote(num_cpus=1, max_retries=0)
def _train_task(run, spec, interval: float, upload):
    from normviz import runtime, worker

    runtime.configure_torch()  # one intra-op thread per run, as in a local worker
    yield from worker.train_steps(run, spec, interval, upload, encoded=True)


class _Cancel:
    """The slot's cancel event: setting it cancels the slot's running task."""

    def __init__(self):
        self._event, self.task = threading.Event(), None

    def set(self) -> None:
        self._event.set()
        if self.task is not None:
            ray.cancel(self.task)

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()


class RayWorker:
    """One slot of the run service on the cluster: the executor, cancel event and partials queue a local slot has."""

    def __init__(self):
        self.cancel, self.partials = _Cancel(), queue.Queue()

    def ready(self) -> cf.Future:
        return _ready_task.remote().future()

    def train(self, job: int, run, spec, interval: float, upload) -> cf.Future:
        task = _train_task.options(num_returns="streaming", name=task_name(spec.key())).remote(
            run, spec, interval, upload
        )
        self.cancel.task = task
        if self.cancel.is_set():
            ray.cancel(task)
        future = cf.Future()
        threading.Thread(target=self._follow, args=(job, task, future), name="normviz-ray-follow", daemon=True).start()
        return future

    def _follow(self, job: int, task, future: cf.Future) -> None:
        try:
            for ref in task:
                outcome, value = ray.get(ref)
                if outcome != "partial":
                    future.set_result((outcome, value))
                    return
                self.partials.put((job, value))
            future.set_result(("failed", "The run produced no result."))
        except TaskCancelledError:
            future.set_result(("cancelled", None))
        except RayError as exc:  # the worker or its node died: the service fails the run and replaces the slot
            log.warning("a Ray task died: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            future.set_exception(cf.BrokenExecutor(type(exc).__name__))
        finally:
            if self.cancel.task is task:  # the service may have started the slot's next task already
                self.cancel.task = None

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        if cancel_futures and self.cancel.task is not None:
            ray.cancel(self.cancel.task)
