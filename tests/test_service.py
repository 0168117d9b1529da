"""The run service (normviz.service): worker processes, shared runs, cancellation, a killed worker, priorities,
and results served from disk after a restart."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import types
from dataclasses import dataclass

import numpy as np
import pytest

from normviz import data, runtime, service
from normviz.config import Spec, SpecError, param
from normviz.experiments import activations, running_stats
from normviz.runs import final
from normviz.service import SESSION, WARM, RunService
from normviz.train import BatchSampler

LONG = activations.ActivationsSpec(steps=5000, probe_every=1000)  # far longer than any test waits for it
SMALL = activations.ActivationsSpec(steps=12, probe_every=4)


def wait_for(condition, timeout: float = 30.0, poll: float = 0.02):
    """Poll until condition() is true (returns it) or fail after timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"not within {timeout} s")


def state(handle) -> str:
    return handle.status().state


def finish(handle, timeout: float = 60.0):
    wait_for(lambda: state(handle) not in ("queued", "running"), timeout)
    return handle


@dataclass(frozen=True)
class GateSpec(Spec):
    """A test run that trains nothing: it waits for its gate (by name) and yields its progress."""

    name: str = param("a", "which gate the run waits for")


@dataclass
class GateResult:
    name: str
    progress: float
    done: bool = False


GATES: dict[str, threading.Event] = {}
STARTED: list[str] = []  # names of the gate runs in the order they started (thread backend)


def gate_run(spec: GateSpec):
    STARTED.append(spec.name)
    gate = GATES.setdefault(spec.name, threading.Event())
    yield GateResult(spec.name, 0.0)
    while not gate.is_set():
        runtime.check_cancelled()  # what every training loop does at each batch
        time.sleep(0.005)
    yield GateResult(spec.name, 1.0, True)


@pytest.fixture
def threads():
    GATES.clear()
    STARTED.clear()
    made = []

    def make(workers: int = 1, heartbeat_timeout: float = 60.0, cache=None, **kw) -> RunService:
        """A service whose followers stay (tests poll one handle at a time) unless a test shortens the timeout."""
        made.append(RunService(workers, processes=False, cache=cache, heartbeat_timeout=heartbeat_timeout, **kw))
        return made[-1]

    yield make
    for gate in GATES.values():
        gate.set()
    for svc in made:
        svc.shutdown()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Two worker processes, started once for the module (each imports torch: seconds on a busy machine).

    They start while __main__ is a page script, as under Streamlit: a worker that imported it would exit."""
    page = tmp_path_factory.mktemp("app") / "page.py"
    page.write_text("raise SystemExit('a worker process ran the page')\n")
    streamlit_main = types.ModuleType("__main__")
    streamlit_main.__file__ = str(page)
    saved, sys.modules["__main__"] = sys.modules["__main__"], streamlit_main
    try:
        svc = RunService(2, processes=True, cache=None, heartbeat_timeout=60.0)
        svc.worker_pids()
    finally:
        sys.modules["__main__"] = saved
    yield svc
    svc.shutdown()


# ---- the worker processes ----


def test_the_pool_matches_the_in_process_run_result_for_result(pool):
    runtime.configure_torch()  # the workers' settings: one thread, flush-denormal
    small_rs = running_stats.RunningStatsSpec(steps=20, pop_every=10)
    for run, spec in [(activations.run, SMALL), (running_stats.run, small_rs)]:
        handle = finish(pool.submit(spec, run, follower=None))
        assert handle.status() == service.RunStatus("done", 0, 0.0, 1.0)
        got, want = handle.latest(), final(run(spec))
        assert got.summary() == want.summary()
        for name in ("loss", "batch_acc") if run is activations.run else ("loss",):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert pool.result(spec.key()) is got  # kept in memory for the next session


def test_a_sessions_upload_trains_in_a_worker_process(pool):
    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(120)).encode()
    held = data.register(data.read_upload("mine.csv", rows, 2**20))  # the session holds it while its run trains
    spec = SMALL.replace(dataset="upload", upload=held.key)
    handle = finish(pool.submit(spec, activations.run, follower=None))
    assert handle.status().state == "done", handle.status().error
    assert handle.latest().summary() == final(activations.run(spec)).summary()


def test_partial_results_stream_from_a_worker_and_a_lambda_fails_in_one_line(pool):
    handle = pool.submit(LONG.replace(seed=11), activations.run, follower="p")
    first = wait_for(handle.latest)
    assert not first.done and state(handle) == "running"
    later = wait_for(lambda: (r := handle.latest()) is not first and r)  # a newer partial result came over
    assert later.steps_done > first.steps_done
    handle.release()
    broken = finish(pool.submit(SMALL.replace(seed=12), lambda spec: activations.run(spec), follower="q"))
    status = broken.status()
    assert status.state == "failed" and "\n" not in status.error and "could not start" in status.error


def test_a_killed_worker_costs_only_its_run(pool):
    before = pool.worker_pids()
    doomed = pool.submit(LONG.replace(seed=21), activations.run, follower="doomed")
    wait_for(lambda: state(doomed) == "running")
    other = pool.submit(SMALL.replace(seed=22), activations.run, follower="other")  # on the other worker
    os.kill(pool.pid_of(doomed), signal.SIGKILL)
    status = finish(doomed).status()
    assert status.state == "failed" and status.error == service.KILLED and "\n" not in status.error
    assert state(finish(other)) == "done"
    retry = finish(pool.submit(SMALL.replace(seed=21), activations.run, follower="doomed"))
    assert state(retry) == "done"
    after = pool.worker_pids()  # the dead worker's slot has a new process
    assert len(after) == 2 and len(set(after) - set(before)) == 1


def test_a_cancelled_run_frees_its_worker_process(pool):
    first = pool.submit(LONG.replace(seed=31), activations.run, follower="c")
    wait_for(lambda: state(first) == "running")
    pid = pool.pid_of(first)
    second = pool.submit(SMALL.replace(seed=32), activations.run, follower="c")  # the slider moved
    assert state(first) == "cancelled"
    assert state(finish(second)) == "done"
    wait_for(lambda: pool.busy() == 0, 5)
    assert pid in pool.worker_pids()  # freed, not killed


# ---- sharing and cancellation (threads: the same service code, no process start-up) ----


def test_identical_specs_share_one_run_across_followers(threads):
    svc = threads(2)
    a = svc.submit(GateSpec(name="shared"), gate_run, follower="a")
    b = svc.submit(GateSpec(name="shared"), gate_run, follower="b")
    wait_for(lambda: state(a) == "running")
    assert svc.busy() == 1 and a.key == b.key
    a.release()  # b still follows: the run goes on
    time.sleep(0.05)
    assert state(b) == "running"
    GATES["shared"].set()
    finish(b)
    assert STARTED == ["shared"] and b.latest().done and a.latest() is b.latest()
    again = svc.submit(GateSpec(name="shared"), gate_run, follower="c")  # a finished run comes from memory
    assert state(again) == "done" and again.latest() is b.latest() and STARTED == ["shared"]


def test_moving_a_slider_cancels_the_previous_run_unless_another_session_follows_it(threads):
    svc = threads(1)
    old = svc.submit(GateSpec(name="old"), gate_run, follower="s")
    wait_for(lambda: state(old) == "running")
    new = svc.submit(GateSpec(name="new"), gate_run, follower="s")
    assert state(old) == "cancelled"
    wait_for(lambda: state(new) == "running", 5)  # the one worker was freed and took the next job
    watched = svc.submit(GateSpec(name="watched"), gate_run, follower="t")  # queued behind "new"
    svc.submit(GateSpec(name="watched"), gate_run, follower="s")  # s moves on to the run t also follows
    assert state(new) == "cancelled" and state(watched) in ("queued", "running")
    GATES.setdefault("watched", threading.Event()).set()
    assert state(finish(watched)) == "done"
    assert STARTED == ["old", "new", "watched"]


def test_a_closed_tab_cancels_its_run_within_about_a_second(threads):
    svc = threads(1, heartbeat_timeout=service.HEARTBEAT_TIMEOUT)
    gone = svc.submit(GateSpec(name="gone"), gate_run, follower="closed-tab")
    wait_for(lambda: state(gone) == "running")
    last_heartbeat = time.monotonic()  # the tab is closed: nothing polls its handle any more
    wait_for(lambda: svc.busy() == 0, 3)
    assert time.monotonic() - last_heartbeat < service.HEARTBEAT_TIMEOUT + 0.5
    alive = svc.submit(GateSpec(name="next"), gate_run, follower="open-tab")
    GATES.setdefault("next", threading.Event()).set()
    assert state(finish(alive, 5)) == "done" and STARTED == ["gone", "next"]
    assert state(gone) == "cancelled"


def test_a_session_run_goes_ahead_of_warm_up_and_sees_its_place_in_the_queue(threads):
    svc = threads(1)
    warm = [svc.submit(GateSpec(name=f"warm{i}"), gate_run, follower=None, priority=WARM) for i in range(3)]
    wait_for(lambda: state(warm[0]) == "running")
    first = svc.submit(GateSpec(name="s1"), gate_run, follower="s1")  # stops the running warm-up job
    wait_for(lambda: state(first) == "running", 5)
    assert state(warm[0]) == "queued"  # back in the queue, not lost
    second = svc.submit(GateSpec(name="s2"), gate_run, follower="s2")
    third = svc.submit(GateSpec(name="s3"), gate_run, follower="s3")
    s2, s3 = second.status(), third.status()
    assert (s2.state, s2.ahead, s3.state, s3.ahead) == ("queued", 0, "queued", 1)  # ahead of every warm-up job
    assert 0 < s2.eta_seconds < s3.eta_seconds
    for name in ("s1", "s2", "s3", "warm0", "warm1", "warm2"):
        GATES.setdefault(name, threading.Event()).set()
    for handle in warm + [first, second, third]:
        assert state(finish(handle)) == "done"
    assert STARTED == ["warm0", "s1", "s2", "s3", "warm0", "warm1", "warm2"]


def test_a_session_asking_for_a_queued_warm_up_run_moves_it_to_session_priority(threads):
    svc = threads(1)
    busy = svc.submit(GateSpec(name="busy"), gate_run, follower="owner")
    wait_for(lambda: state(busy) == "running")
    warm = [svc.submit(GateSpec(name=f"warm{i}"), gate_run, follower=None, priority=WARM) for i in range(2)]
    wanted = svc.submit(GateSpec(name="warm1"), gate_run, follower="student", priority=SESSION)
    assert wanted.key == warm[1].key and wanted.status().ahead == 0 and warm[0].status().ahead == 1


def test_the_queue_is_bounded_for_sessions(threads):
    svc = threads(1, max_queued=2)
    running = svc.submit(GateSpec(name="running"), gate_run, follower="a")
    wait_for(lambda: state(running) == "running")
    svc.submit(GateSpec(name="waiting"), gate_run, follower="b")
    svc.submit(GateSpec(name="waiting too"), gate_run, follower="d")
    with pytest.raises(service.QueueFull, match="The server is busy: 2 runs are waiting"):
        svc.submit(GateSpec(name="refused"), gate_run, follower="c")
    assert state(svc.submit(GateSpec(name="warm"), gate_run, follower=None, priority=WARM)) == "queued"
    assert state(svc.submit(GateSpec(name="waiting"), gate_run, follower="c")) == "queued"  # following one is fine


def refused_run(spec: GateSpec):
    raise SpecError(f"{spec.name} needs fewer samples")
    yield


def crashing_run(spec: GateSpec):
    yield GateResult(spec.name, 0.0)
    raise ZeroDivisionError("a bug in an experiment")


def test_a_run_error_is_one_line_and_a_bad_setting_names_itself(threads):
    svc = threads(1)
    refused = finish(svc.submit(GateSpec(name="width"), refused_run, follower="x")).status()
    assert refused == service.RunStatus(
        "failed", 0, 0.0, 0.0, "Cannot run with these settings: width needs fewer samples"
    )
    crashed = finish(svc.submit(GateSpec(name="bug"), crashing_run, follower="x")).status()
    assert crashed.state == "failed" and "ZeroDivisionError" in crashed.error and "\n" not in crashed.error


# ---- the loops see the cancel event ----


def test_training_loops_stop_at_their_next_batch_once_cancelled():
    import torch

    sampler = BatchSampler(10, 2, torch.Generator().manual_seed(0))
    sampler.next()  # outside a worker: a no-op
    cancel = threading.Event()
    runtime.enter_worker(cancel)
    try:
        sampler.next()
        cancel.set()
        with pytest.raises(runtime.Cancelled):
            sampler.next()
    finally:
        runtime.enter_worker(None)


# ---- results outlive the process ----


def test_a_restarted_service_serves_a_finished_run_from_disk(tmp_path, threads):
    persist = pytest.importorskip("normviz.persist")
    first = threads(1, cache=persist.ResultCache(str(tmp_path)))
    trained = finish(first.submit(SMALL, activations.run, follower="a")).latest()
    first.shutdown()
    restarted = threads(1, cache=persist.ResultCache(str(tmp_path)))
    served = restarted.submit(SMALL, gate_run, follower="b")  # would train nothing like it if it ran
    assert state(served) == "done" and STARTED == []
    assert served.latest().summary() == trained.summary()
