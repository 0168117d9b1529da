"""Process-wide torch settings for a small CPU machine shared by several browser sessions."""

from __future__ import annotations

import os
import threading
from collections import deque

import torch

# One intra-op thread per run: Streamlit sessions are threads of one process, and two sessions already
# fill a 2-core machine. `python -m bench --only threads` on the 2-core machine, 2026-11-23, other jobs
# running (load average 5-8), best of 3 (wall time):
#   Activations default, alone:         1 thread 1.97 s, 2 threads 37.7 s (OpenMP waits on busy cores)
#   Activations default, two at once:   1 thread 3.02 s, 2 threads 4.57 s
# Idle machine, same day: one Activations run 1.26 s vs 1.19 s on 2 threads, two at once 3.14 s vs 3.27 s;
# one init sweep (4 epochs) 0.76 s vs 0.46 s, two at once 0.92 s vs 1.01 s. Only the sweep's large
# operations gain from a second thread, and only while nothing else runs: SpareCore below.
THREADS_PER_RUN = 1


def configure_torch() -> None:
    """app.py calls this at the top of every script run: flush-denormal is a per-thread CPU flag."""
    torch.set_num_threads(THREADS_PER_RUN)
    # tiny-init networks produce denormals: a (32, 100, 100) multiply on them took 1.8 ms instead of 0.08 ms
    torch.set_flush_denormal(True)


class Cancelled(Exception):
    """Raised inside a run when nobody follows it any more (normviz.service): the worker is freed, not killed."""


_worker = threading.local()  # the cancel event of the run service's worker running on this thread


def enter_worker(cancel) -> None:
    """Make this thread a run-service worker: check_cancelled() then raises once `cancel` (an Event) is set."""
    _worker.cancel = cancel


def check_cancelled() -> None:
    """Called every training step: raises Cancelled when this worker's run was cancelled (no-op outside one)."""
    cancel = getattr(_worker, "cancel", None)
    if cancel is not None and cancel.is_set():
        raise Cancelled


def runnable_tasks() -> int | None:
    """How many threads on the whole machine are running or waiting for a core right now (Linux)."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


class SpareCore:
    """Two intra-op threads for a run with large tensors while the machine's other core is free, else one
    (more exactly: the thread count the run started with).

    The init sweep's (32, 100, 100) operations ran 1.6-1.8x faster on two threads on the idle 2-core machine,
    but 1.4x slower (and the Activations run 3.4x slower) while another process kept one core busy: OpenMP
    then waits for a thread that has no core. So before each step the run counts the machine's runnable
    threads (an instant reading of /proc/loadavg, 15 us), minus itself and its own second thread, and uses
    two threads only while that count averaged over the last `window` steps stays below one half. Another
    session's run, a warm-up or any other process therefore sends it back to one thread within a few steps.
    The thread count does not change the results (tests/test_runtime.py).
    """

    def __init__(self, threads: int = 2, window: int = 8, count=runnable_tasks):
        self.threads, self.count = threads, count
        self.others: deque[int] = deque(maxlen=window)
        self.initial = self.current = torch.get_num_threads()
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def step(self) -> int:
        """Set this thread's torch thread count for the next step; returns it."""
        running = self.count()
        if running is None or self.cores < self.threads:
            wanted = self.initial
        else:
            # our OpenMP thread may be spinning (counted) or asleep (not) between steps: clamp at zero
            self.others.append(max(0, running - self.current))
            wanted = self.threads if sum(self.others) < len(self.others) / 2 else self.initial
        if wanted != self.current:
            torch.set_num_threads(wanted)
            self.current = wanted
        return wanted

    def release(self) -> None:
        """Back to the thread count this thread had before (the run finished or was abandoned)."""
        if self.current != self.initial:
            torch.set_num_threads(self.initial)
            self.current = self.initial
