"""The run service: every run trains in a worker process, shared by Spec key across all browser sessions.

    handle = default_service().submit(spec, activations.run, follower=session_id)
    handle.latest()   # the newest partial result (about four a second) or the final one; never blocks
    handle.status()   # queued (N runs ahead, about T s) / running / done / failed / cancelled

```
 sessions ── submit / heartbeat / latest ──▶ RunService ── queue (SESSION before WARM) ──▶ slot 1 .. slot N
                                             │ a run per key, its followers               one single-process
                                             │ memory store → disk cache                  executor each
                                             ◀── partial results (a queue per slot, ~4/s) ─┘
```
A slot is a ProcessPoolExecutor of one worker, so a worker that dies (SIGKILL, out of memory) fails only its run
and the slot gets a new executor. A run nobody follows is cancelled: its worker's loop sees the slot's cancel
event at its next step (normviz.runtime.check_cancelled) and the worker takes the next job. NORMVIZ_WORKERS=0
runs the same slots as threads of this process (tests, AppTest). `experiments.X.run(spec)` stays a plain
generator: the CLI and the tests call it directly.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import heapq
import itertools
import logging
import multiprocessing
import os
import queue
import sys
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from normviz import cost, data, persist, playback, runtime, worker
from normviz.data import DataError
from normviz.runs import RunStore, result_bytes

if TYPE_CHECKING:
    from normviz.shared_runs import SharedRuns

SESSION, WARM = 0, 1  # a session's run always takes the next free worker ahead of any WARM job
HEARTBEAT_TIMEOUT = 1.5  # seconds of silence after which a follower counts as gone (its tab was closed)
# finished runs whose frames stay replayable: how many, their bytes (48 frames of results of up to about
# 1.5 MB each), and for how long
TAPES_KEPT, TAPE_BYTES, TAPE_KEPT_S = 16, 256 * 2**20, 1800
PARTIAL_INTERVAL = 0.25  # at most about four partial results a second cross from a worker
DEFAULT_SECONDS = 5.0  # a run's duration before the cost model or a finished run of its kind says better
KILLED = "the worker training this run stopped (killed or out of memory); retry"
GROW_INTERVAL = 5.0  # seconds between two looks at the Ray cluster's CPU count
MAX_QUEUED = 200  # sessions' runs waiting at once; one more is refused (each session has at most one)
log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The server's queue is full: a session's new run is refused with this one-line message."""


@dataclass(frozen=True)
class RunStatus:
    state: str  # "queued" | "running" | "done" | "failed" | "cancelled"
    ahead: int  # runs ahead of this one in the queue (0 once running)
    eta_seconds: float  # estimated seconds until it starts (queued) or ends (running)
    progress: float  # 0..1 of the newest partial result
    error: str | None = None  # one line for "failed"


# ---- the worker side (a process of its own, or a thread of this one) ----------------------------------

_worker = threading.local()


def _enter_worker(cancel, partials, encoded: bool, process: bool) -> None:
    runtime.configure_torch()  # one intra-op thread per run; flush-denormal is per thread
    runtime.enter_worker(cancel)
    _worker.partials, _worker.encoded = partials, encoded
    if process:  # exiting must not wait for a partial result nobody reads any more
        partials.cancel_join_thread()
        worker.preload_experiments()


def _ready() -> int:
    """Submitted once to every new slot: starts its process now instead of at the first run; its pid."""
    return os.getpid()


def _train(job: int, run: Callable, spec, interval: float, upload: data.Upload | None) -> tuple[str, object]:
    """A slot's job in its worker: partial results go to the slot's queue; returns the final (outcome, value)."""
    for outcome, value in worker.train_steps(run, spec, interval, upload, _worker.encoded):
        if outcome == "partial":
            _worker.partials.put((job, value))
    return outcome, value  # the last one is the final outcome


# ---- the server side -----------------------------------------------------------------------------------


class _Run:
    """One run, shared by every session that follows it."""

    def __init__(self, key: str, spec, run: Callable, priority: int, seq: int, estimate: float):
        self.key, self.spec, self.run, self.priority, self.seq, self.estimate = key, spec, run, priority, seq, estimate
        self.state, self.latest, self.error = "queued", None, None
        self.followers: set[str] = set()
        self.pinned = False  # submitted by nobody's session (warm-up, CLI): runs to its end
        self.cancelling = False  # its slot's cancel event is set
        self.requeue = False  # a WARM run stopped for a session's run: back into the queue
        self.started, self.job, self.slot = 0.0, -1, None
        self.claimed = False  # this replica holds the run's lease in the shared store and trains it
        self.remote = False  # another replica trains it; this one follows it through the shared store
        self.orphaned = False  # claimed, no session here follows it: cancelled unless one on another replica does
        self.partial_encoded, self.published = None, True  # the newest partial result as it goes to other replicas
        self.tape: list = []  # its partial results so far (playback.record), then the final one: for replays

    def __repr__(self):
        return f"_Run({self.key[:12]}, {self.state}, followers={len(self.followers)})"


_main_lock = threading.Lock()


@contextlib.contextmanager
def _bare_main():
    """Streamlit runs each page as the module __main__, and a spawned process imports __main__ again: every worker
    would run the app. While a worker process starts, __main__ is an empty module (the worker needs nothing of it)."""
    with _main_lock:
        saved = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = saved


class _Slot:
    """One worker: a single-worker executor (or a Ray worker), its cancel event and its queue of partial results."""

    def __init__(self, service: RunService, index: int):
        self.index, self.run, self.alive = index, None, True
        # results cross a process boundary, or go to other replicas, as arrays and JSON
        self.encoded = service.processes or service.cluster is not None or service.shared is not None
        if service.cluster is not None:
            self.executor = service.cluster.RayWorker()
            self.cancel, self.partials = self.executor.cancel, self.executor.partials
            self.started = self.executor.ready()
        elif service.processes:
            ctx = multiprocessing.get_context("spawn")  # never fork a process that has loaded torch
            self.cancel, self.partials = ctx.Event(), ctx.Queue()
            self.executor = cf.ProcessPoolExecutor(
                1, mp_context=ctx, initializer=_enter_worker, initargs=(self.cancel, self.partials, True, True)
            )
            with _bare_main():  # the process starts here
                self.started = self.executor.submit(_ready)  # its result: the worker's pid
        else:
            self.cancel, self.partials = threading.Event(), queue.Queue()
            self.executor = cf.ThreadPoolExecutor(
                1,
                f"normviz-worker-{index}",
                initializer=_enter_worker,
                initargs=(self.cancel, self.partials, self.encoded, False),
            )
            self.started = self.executor.submit(_ready)
        self.reader = threading.Thread(target=service._read_partials, args=(self,), daemon=True)
        self.reader.start()

    def train(self, entry: _Run, interval: float, upload: data.Upload | None) -> cf.Future:
        if isinstance(self.executor, cf.Executor):
            return self.executor.submit(_train, entry.job, entry.run, entry.spec, interval, upload)
        return self.executor.train(entry.job, entry.run, entry.spec, interval, upload)


class RunHandle:
    """A session's view of one run; reading it also tells the service that the session is alive."""

    def __init__(self, service: RunService, run: _Run, follower: str | None):
        self._service, self._run, self._follower = service, run, follower

    @property
    def key(self) -> str:
        return self._run.key

    def latest(self):
        """The newest partial result or the final one; None before the first; never blocks."""
        self._service.heartbeat(self._follower)
        return self._run.latest

    def status(self) -> RunStatus:
        self._service.heartbeat(self._follower)
        return self._service._status(self._run)

    def release(self) -> None:
        """This follower stops following; the run is cancelled when nobody follows it."""
        self._service._release(self._follower, self._run)

    def __repr__(self):
        return f"RunHandle({self.key[:12]}, follower={self._follower!r}, {self._run.state})"


_NO_CACHE = object()


def disk_cache():
    """normviz.persist's default cache (NORMVIZ_CACHE_DIR), or None when it is off."""
    return persist.default_cache()


def _kind(run: Callable) -> str:
    return f"{getattr(run, '__module__', '')}.{getattr(run, '__qualname__', run)}"


class RunService:
    """Runs by Spec key on `workers` worker processes (or threads, processes=False); see the module docstring."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        processes: bool = True,
        ray_address: str | None = None,
        shared: SharedRuns | None = None,
        store: RunStore | None = None,
        cache=_NO_CACHE,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        partial_interval: float = PARTIAL_INTERVAL,
        max_queued: int = MAX_QUEUED,
    ):
        self.cluster, self.shared = None, shared
        if ray_address:  # one slot per CPU of the cluster
            from normviz import ray_pool

            workers, self.cluster = ray_pool.connect(ray_address), ray_pool
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.processes, self.heartbeat_timeout, self.partial_interval = processes, heartbeat_timeout, partial_interval
        self.max_queued = max_queued
        self.store = store if store is not None else RunStore()
        self.cache = disk_cache() if cache is _NO_CACHE else cache
        self._lock = threading.RLock()  # a future's callback may run inside submit, under the lock
        self._seq, self._jobs = itertools.count(), itertools.count()
        self._queue: list[_Run] = []  # queued runs
        self._active: dict[str, _Run] = {}  # queued or running runs by key (a cancelled one leaves at once)
        self._following: dict[str, _Run] = {}  # follower -> its one run
        self._seen: dict[str, float] = {}  # follower -> monotonic time of its last sign of life
        self._durations: dict[str, float] = {}  # run kind -> seconds of its latest finished run
        self._tapes: OrderedDict[str, tuple[list, float, int]] = OrderedDict()  # key -> (tape, when kept, bytes)
        self._closed = threading.Event()
        self._slots = [_Slot(self, i) for i in range(self.workers)]
        self._watchdog = threading.Thread(target=self._watch, name="normviz-heartbeats", daemon=True)
        self._watchdog.start()
        if shared is not None:
            self._sharing = threading.Thread(target=self._share, name="normviz-shared-runs", daemon=True)
            self._sharing.start()

    def __repr__(self):
        kind = "Ray CPUs" if self.cluster else "processes" if self.processes else "threads"
        return f"RunService({self.workers} {kind}, {len(self._queue)} queued, {len(self._active)} active)"

    # ---- the public API ----

    def submit(self, spec, run: Callable[..., Iterator], *, follower: str | None, priority: int = SESSION) -> RunHandle:
        """Follow the run of `spec`: the one in progress, a finished one (memory, then disk) or a new one.

        A follower (a session id) follows one run at a time: submitting another releases its previous one.
        follower=None (warm-up, CLI): nobody releases the run, it runs to its end. Raises QueueFull when
        max_queued sessions' runs already wait."""
        if self._closed.is_set():
            raise RuntimeError("the run service is shut down")
        key = spec.key()
        with self._lock:
            entry = self._active.get(key)
        if entry is None:
            result = self.result(key)  # the disk and the shared store are read outside the lock
            claimed = result is None and (self.shared is None or self.shared.claim(key))
            with self._lock:
                entry = self._active.get(key)
                if entry is None and result is not None:
                    entry = _Run(key, spec, run, priority, next(self._seq), 0.0)
                    entry.state, entry.latest = "done", result
                elif entry is None:
                    waiting = sum(e.priority == SESSION for e in self._queue)
                    if priority == SESSION and waiting >= self.max_queued:
                        raise QueueFull(f"The server is busy: {waiting} runs are waiting. Try again in a minute.")
                    entry = _Run(key, spec, run, priority, next(self._seq), self._estimate(spec, run))
                    self._active[key] = entry
                    if claimed:
                        entry.claimed = self.shared is not None
                        self._queue.append(entry)
                    else:  # another replica trains it
                        entry.state, entry.remote, entry.started = "running", True, time.monotonic()
        with self._lock:
            self._follow(entry, follower, priority)
            self._dispatch()
        return RunHandle(self, entry, follower)

    def heartbeat(self, follower: str | None) -> None:
        """The follower (a session) is alive; one silent for longer than heartbeat_timeout is released."""
        if follower is not None:
            with self._lock:
                self._seen[follower] = time.monotonic()

    def result(self, key: str):
        """The final result from memory, then the shared store, then the disk cache, else None."""
        found = self.store.get(key)
        if found is None and self.shared is not None:
            found = _decoded(self.shared.result(key))
            if found is not None:
                self.store.put(key, found)
        if found is None and self.cache is not None:
            try:
                found = self.cache.get(key)
            except Exception:  # noqa: BLE001 (a broken cache must not break a page: train again)
                log.exception("reading the disk cache failed")
                found = None
            if found is not None:
                self.store.put(key, found)
        return found

    def tape(self, key: str) -> list:
        """The frames of a run this server trained or followed: its partial results so far, then the final one.
        Kept for TAPE_KEPT_S after the run ended (the newest TAPES_KEPT runs, within TAPE_BYTES); [] when there
        is none."""
        with self._lock:
            entry = self._active.get(key)
            if entry is not None:
                return list(entry.tape)
            found = self._tapes.get(key)
            if found is None or time.monotonic() - found[1] > TAPE_KEPT_S:
                return []
            return list(found[0])

    def _keep_tape(self, entry: _Run, final) -> None:
        playback.record(entry.tape, final)
        if len(entry.tape) > 1:  # a run with no partial result has nothing to replay
            self._tapes[entry.key] = (entry.tape, time.monotonic(), sum(map(result_bytes, entry.tape)))
            self._tapes.move_to_end(entry.key)
            while len(self._tapes) > TAPES_KEPT or sum(t[2] for t in self._tapes.values()) > TAPE_BYTES:
                self._tapes.popitem(last=False)

    def shutdown(self) -> None:
        """Cancel every run and stop the workers."""
        self._closed.set()
        with self._lock:
            for entry in self._queue:
                entry.state = "cancelled"
            self._queue.clear()
            self._active.clear()
            slots = list(self._slots)
            for slot in slots:
                slot.cancel.set()
        for slot in slots:
            slot.executor.shutdown(wait=True, cancel_futures=True)
            slot.alive = False
        self._watchdog.join()
        if self.shared is not None:
            self._sharing.join()

    # ---- for tests and benchmarks ----

    def busy(self) -> int:
        """How many workers are training now."""
        with self._lock:
            return sum(slot.run is not None for slot in self._slots)

    def worker_pids(self, timeout: float = 60) -> list[int]:
        """The process ids of the workers, slot by slot, once they have started (process backend)."""
        with self._lock:
            slots = list(self._slots)
        return [slot.started.result(timeout) for slot in slots]

    def pid_of(self, handle: RunHandle, timeout: float = 60) -> int | None:
        """The process id of the worker training the handle's run (None when it is not running)."""
        with self._lock:
            slot = handle._run.slot if handle._run.state == "running" else None
        return None if slot is None else slot.started.result(timeout)

    # ---- inside ----

    def _estimate(self, spec, run: Callable) -> float:
        try:
            return float(cost.estimate(spec))
        except TypeError:  # a spec without a work model (a test's): the last run of its kind says, or a guess
            return self._durations.get(_kind(run), DEFAULT_SECONDS)

    def _follow(self, entry: _Run, follower: str | None, priority: int) -> None:
        if priority < entry.priority:  # a session asks for a queued or running warm-up run: it is a session's now
            entry.priority = priority
        if follower is None:
            entry.pinned = True
            return
        self._seen[follower] = time.monotonic()
        previous = self._following.get(follower)
        self._following[follower] = entry
        entry.followers.add(follower)
        if previous is not None and previous is not entry:
            self._unfollow(previous, follower)

    def _release(self, follower: str | None, entry: _Run) -> None:
        if follower is None:
            return
        with self._lock:
            if self._following.get(follower) is entry:
                del self._following[follower]
            self._unfollow(entry, follower)
            self._dispatch()

    def _unfollow(self, entry: _Run, follower: str) -> None:
        entry.followers.discard(follower)
        if entry.followers or entry.pinned or entry.state not in ("queued", "running"):
            return
        if entry.claimed and self.shared.up:  # a session on another replica may follow it: _share decides
            entry.orphaned = True
            return
        self._cancel(entry)

    def _cancel(self, entry: _Run) -> None:
        if self._active.get(entry.key) is entry:
            del self._active[entry.key]
        if entry.remote:
            entry.state = "cancelled"
        elif entry.state == "queued":
            self._queue.remove(entry)
            entry.state = "cancelled"
            self._forget(entry)
        else:
            entry.cancelling, entry.requeue = True, False
            entry.slot.cancel.set()

    def _forget(self, entry: _Run) -> None:
        """A claimed run that ends without a result gives its lease back (on a thread: it is network I/O)."""
        if entry.claimed:
            threading.Thread(target=self.shared.drop, args=(entry.key,), daemon=True).start()

    def _dispatch(self) -> None:
        """Start queued runs on idle slots, sessions' first; stop a warm-up run for a session that waits."""
        idle = [slot for slot in self._slots if slot.run is None and slot.alive]
        while idle and self._queue:
            entry = min(self._queue, key=lambda e: (e.priority, e.seq))
            self._queue.remove(entry)
            self._start(idle.pop(0), entry)
        waiting = sum(e.priority == SESSION for e in self._queue)
        stopping = sum(s.run is not None and s.run.requeue for s in self._slots)
        for slot in self._slots:
            if waiting <= stopping:
                break
            entry = slot.run
            if entry is not None and entry.priority == WARM and not entry.followers and not entry.cancelling:
                entry.cancelling = entry.requeue = True
                slot.cancel.set()
                stopping += 1

    def _start(self, slot: _Slot, entry: _Run) -> None:
        entry.state, entry.slot, entry.started, entry.job = "running", slot, time.monotonic(), next(self._jobs)
        entry.cancelling = entry.requeue = False
        slot.run = entry
        future = cf.Future()
        try:
            upload = data.uploaded(entry.spec.upload) if getattr(entry.spec, "upload", "") else None
            future = slot.train(entry, self.partial_interval, upload)
        except DataError as exc:  # the session that uploaded the data has gone
            future.set_result(("failed", f"Cannot run with these settings: {exc}"))
        except (cf.BrokenExecutor, RuntimeError) as exc:  # the worker died between two runs
            future.set_exception(exc)
        future.add_done_callback(lambda f: self._finished(slot, entry, f))

    def _finished(self, slot: _Slot, entry: _Run, future: cf.Future) -> None:
        encoded = None
        try:
            outcome, value = future.result()
            if outcome == "done" and slot.encoded:
                encoded, value = value, persist.decode(value)
        except cf.BrokenExecutor:
            outcome, value = "killed", KILLED
        except cf.CancelledError:
            outcome, value = "cancelled", None
        except Exception as exc:  # noqa: BLE001 (e.g. a run that cannot be encoded for a worker process)
            log.error("run %s could not start: %s", _kind(entry.run), exc)
            outcome, value = (
                "failed",
                f"The run could not start ({type(exc).__name__}); the server log has the details.",
            )
        with self._lock:
            if slot.run is entry:
                slot.run = None
                slot.cancel.clear()
            if outcome == "killed":
                self._replace(slot)
                outcome = "failed"
            if outcome == "cancelled" and entry.requeue and not self._closed.is_set():
                entry.state, entry.cancelling, entry.requeue = "queued", False, False
                entry.latest, entry.tape = None, []
                self._queue.append(entry)
            else:
                if outcome == "cancelled":
                    self._forget(entry)
                entry.state = outcome
                if outcome == "done":
                    entry.latest = value
                    self.store.put(entry.key, value)
                    self._keep_tape(entry, value)
                    self._durations[_kind(entry.run)] = time.monotonic() - entry.started
                elif outcome == "failed":
                    entry.error = value
                if self._active.get(entry.key) is entry:
                    del self._active[entry.key]
            if not self._closed.is_set():
                self._dispatch()
        if entry.claimed and outcome == "done":
            self.shared.finish(entry.key, encoded)
        elif entry.claimed and outcome == "failed":
            self.shared.fail(entry.key, value)
        if outcome == "done" and self.cache is not None:
            try:
                self.cache.put(entry.key, value)
            except Exception:  # noqa: BLE001 (a full or broken disk costs the cache, not the result)
                log.exception("writing the disk cache failed")

    def _replace(self, slot: _Slot) -> None:
        """A dead worker's slot gets a new executor (and a new event and queue: the old ones may be broken)."""
        slot.alive = False
        slot.executor.shutdown(wait=False, cancel_futures=True)
        if not self._closed.is_set():
            self._slots[self._slots.index(slot)] = _Slot(self, slot.index)

    def _read_partials(self, slot: _Slot) -> None:
        while slot.alive and not self._closed.is_set():
            try:
                job, payload = slot.partials.get(timeout=0.2)
                result = persist.decode(payload) if slot.encoded else payload
            except queue.Empty:
                continue
            except Exception:  # noqa: BLE001 (a worker killed mid-message; the slot is being replaced)
                continue
            with self._lock:
                entry = slot.run
                if entry is not None and entry.job == job and entry.state == "running":
                    entry.latest = result
                    playback.record(entry.tape, result)
                    if entry.claimed:
                        entry.partial_encoded, entry.published = payload, False

    def _watch(self) -> None:
        """Release the followers that have gone silent (their tabs were closed); give the cluster's new CPUs slots."""
        grown = time.monotonic()
        while not self._closed.wait(0.1):
            now = time.monotonic()
            if self.cluster is not None and now - grown > GROW_INTERVAL:
                self._grow(self.cluster.cluster_cpus())
                grown = now
            with self._lock:
                for follower, seen in list(self._seen.items()):
                    if now - seen > self.heartbeat_timeout:
                        del self._seen[follower]
                        entry = self._following.pop(follower, None)
                        if entry is not None:
                            self._unfollow(entry, follower)
                self._dispatch()

    def _grow(self, cpus: int) -> None:
        """Workers added to the cluster (`ray start --address=...`) take runs from now on."""
        with self._lock:
            for index in range(len(self._slots), cpus):
                self._slots.append(_Slot(self, index))
                log.info("the Ray cluster has %d CPUs: slot %d added", cpus, index + 1)
            self.workers = len(self._slots)

    def _share(self) -> None:
        """Every partial interval: renew this replica's leases and publish its partial results; follow the runs
        other replicas train (their partial results, their end, or their lease running out: then train it here);
        cancel a claimed run nobody follows on any replica."""
        while not self._closed.wait(self.partial_interval):
            with self._lock:
                owned = [e for e in self._active.values() if e.claimed]
                partials = {e.key: e.partial_encoded for e in owned if not e.published}
                for entry in owned:
                    entry.published = True
                followed = [e for e in self._active.values() if e.remote]
                orphans = [e for e in owned if e.orphaned]
            self.shared.renew([e.key for e in owned], partials)
            found = self.shared.follow([e.key for e in followed])
            watched = {e.key for e in orphans if self.shared.watched_elsewhere(e.key)}
            # no result, no lease, no error (its replica went away), or Redis is down: train it here
            claimed = {e.key for e in followed if _abandoned(found.get(e.key)) and self.shared.claim(e.key)}
            with self._lock:
                for entry in followed:
                    if self._active.get(entry.key) is entry and entry.remote:
                        self._follow_remote(entry, found.get(entry.key), entry.key in claimed)
                for entry in orphans:
                    if entry.followers:
                        entry.orphaned = False
                    elif entry.key not in watched and entry.state in ("queued", "running"):
                        self._cancel(entry)
                self._dispatch()

    def _follow_remote(self, entry: _Run, found: tuple | None, claimed: bool) -> None:
        result, partial, leased, error = found if found is not None else (None, None, False, None)
        if result is not None and (final := _decoded(result)) is not None:
            entry.state, entry.latest = "done", final
            self.store.put(entry.key, final)
            self._keep_tape(entry, final)
            del self._active[entry.key]
        elif error is not None:
            entry.state, entry.error = "failed", error
            del self._active[entry.key]
        elif leased and partial is not None and partial != entry.partial_encoded:
            entry.partial_encoded, entry.latest = partial, _decoded(partial) or entry.latest
            playback.record(entry.tape, entry.latest)
        elif not leased and claimed:  # its replica went away (or Redis did): train it here
            entry.remote, entry.claimed, entry.state = False, self.shared.up, "queued"
            entry.latest, entry.tape = None, []
            self._queue.append(entry)

    def _remaining(self, entry: _Run, now: float) -> float:
        elapsed = now - entry.started
        progress = entry.latest.progress if entry.latest is not None else 0.0
        if progress > 0.05:
            return max(0.0, elapsed * (1 - progress) / progress)
        return max(0.0, entry.estimate - elapsed)

    def _status(self, entry: _Run) -> RunStatus:
        with self._lock:
            state = "cancelled" if entry.cancelling and not entry.requeue else entry.state
            progress = 1.0 if state == "done" else (entry.latest.progress if entry.latest is not None else 0.0)
            now = time.monotonic()
            if state == "running":
                return RunStatus(state, 0, self._remaining(entry, now), progress)
            if state != "queued":
                return RunStatus(state, 0, 0.0, progress, entry.error)
            # when each worker comes free, then the runs ahead of this one take the first free worker in turn
            free = [self._remaining(s.run, now) if s.run is not None else 0.0 for s in self._slots if s.alive]
            heapq.heapify(free)
            order = sorted(self._queue, key=lambda e: (e.priority, e.seq))
            ahead = order.index(entry) if entry in order else 0
            for other in order[:ahead]:
                heapq.heappush(free, heapq.heappop(free) + other.estimate)
            return RunStatus(state, ahead, free[0] if free else 0.0, progress)


def _abandoned(found: tuple | None) -> bool:
    return found is None or (found[0] is None and not found[2] and found[3] is None)


def _decoded(encoded: bytes | None):
    """A result from the shared store; None when absent or unreadable (another version wrote it: train again)."""
    if encoded is None:
        return None
    try:
        return persist.decode(encoded)
    except persist.DecodeError as exc:
        log.warning("a shared result could not be read (%s); training it here", exc)
        return None


_default: RunService | None = None
_default_lock = threading.Lock()


def workers_from_env() -> int:
    """NORMVIZ_WORKERS: worker processes (default: one per core); 0 runs them as threads of this process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    text = os.environ.get("NORMVIZ_WORKERS", "").strip()
    try:
        return max(0, int(text)) if text else cores
    except ValueError:
        log.warning("NORMVIZ_WORKERS=%r is not a whole number; using %d worker processes", text, cores)
        return cores


def shared_from_url(url: str) -> SharedRuns | None:
    """The store that replicas share at a Redis URL (redis://host:port/db); None when the URL is not one."""
    from normviz.shared_runs import SharedRuns

    try:
        return SharedRuns(url)
    except ValueError as exc:
        log.error("%r is not a Redis URL (%s); results are not shared", url, exc)
        return None


def default_service() -> RunService:
    """The process-wide service, created at the first call: NORMVIZ_RAY_ADDRESS names a Ray cluster to train on
    (else NORMVIZ_WORKERS local workers), NORMVIZ_REDIS_URL the store shared with other replicas."""
    global _default
    with _default_lock:
        if _default is None:
            url = os.environ.get("NORMVIZ_REDIS_URL", "").strip()
            n, shared = workers_from_env(), shared_from_url(url) if url else None
            address = os.environ.get("NORMVIZ_RAY_ADDRESS", "").strip()
            if address:
                try:
                    _default = RunService(ray_address=address, shared=shared)
                except Exception as exc:  # noqa: BLE001 (any failure to join: say so and train here)
                    log.error("cannot join the Ray cluster at %s (%s); training on this machine", address, exc)
            if _default is None:
                _default = RunService(n or os.cpu_count() or 1, processes=n > 0, shared=shared)
        return _default
