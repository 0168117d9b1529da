"""The run service on a real two-node Ray cluster, and two replicas sharing a real Redis (normviz.ray_pool,
normviz.shared_runs). The browser test of two app replicas is tests/e2e/test_cluster_browser.py."""

from __future__ import annotations

import logging
import os
import signal
import time

import numpy as np
import pytest

from normviz import service
from normviz.experiments import activations
from normviz.runs import final
from normviz.service import RunService
from tests.cluster import free_port, ray_workers, start_ray, start_redis
from tests.test_service import finish, state, wait_for

pytestmark = pytest.mark.cluster


def spec(seed: int, steps: int = 400) -> activations.ActivationsSpec:
    return activations.ActivationsSpec(steps=steps, probe_every=50, seed=seed)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    cluster = start_ray(tmp_path_factory.mktemp("ray"))
    yield cluster
    import ray

    ray.shutdown()
    cluster.stop()


@pytest.fixture
def redis_server(tmp_path):
    server = start_redis(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def services():
    started = []

    def make(**kwargs) -> RunService:
        started.append(RunService(cache=None, heartbeat_timeout=30, **kwargs))
        return started[-1]

    yield make
    for each in started:
        each.shutdown()


def test_runs_train_on_ray_workers_and_stream_partial_results(ray_cluster, services):
    ray_service = services(ray_address=ray_cluster.address)
    assert ray_service.workers == 2  # one slot per CPU of the cluster
    run_spec = spec(seed=101)
    handle = ray_service.submit(run_spec, activations.run, follower="s1")
    workers = wait_for(lambda: ray_workers(handle.key), timeout=60)
    assert all(w.pid != os.getpid() and w.parent().name() == "raylet" for w in workers)  # a Ray node's worker
    progress = set()
    while state(handle) in ("queued", "running"):
        if (latest := handle.latest()) is not None and not latest.done:
            progress.add(latest.steps_done)
        time.sleep(0.02)
    assert len(progress) >= 3, progress  # partial results streamed back while it trained
    result = handle.latest()
    assert state(handle) == "done" and result.done
    local = final(activations.run(run_spec))  # the same seed on this process: the same numbers
    np.testing.assert_allclose(result.loss, local.loss, rtol=1e-6)


def test_a_killed_ray_worker_fails_its_run_in_one_line_and_a_retry_trains_it(ray_cluster, services):
    ray_service = services(ray_address=ray_cluster.address)
    run_spec = spec(seed=102, steps=5000)
    handle = ray_service.submit(run_spec, activations.run, follower="s1")
    worker = wait_for(lambda: ray_workers(handle.key), timeout=60)[0]
    wait_for(lambda: handle.latest() is not None, timeout=60)
    os.kill(worker.pid, signal.SIGKILL)
    status = finish(handle).status()
    assert status.state == "failed" and status.error == service.KILLED
    retry = ray_service.submit(spec(seed=102, steps=300), activations.run, follower="s1")
    assert finish(retry, timeout=120).status().state == "done"


def test_a_released_run_cancels_its_ray_task_and_frees_the_worker(ray_cluster, services):
    ray_service = services(ray_address=ray_cluster.address)
    handle = ray_service.submit(spec(seed=103, steps=5000), activations.run, follower="s1")
    worker = wait_for(lambda: ray_workers(handle.key), timeout=60)[0]
    handle.release()
    wait_for(lambda: ray_service.busy() == 0 and not ray_workers(handle.key), timeout=10)
    assert worker.is_running()  # freed, not killed: it takes the next task
    again = ray_service.submit(spec(seed=104, steps=200), activations.run, follower="s1")
    assert finish(again, timeout=60).status().state == "done"


def test_two_replicas_train_a_new_spec_once_and_share_its_result(redis_server, services):
    replica_a = services(workers=1, processes=False, shared=service.shared_from_url(redis_server.url))
    replica_b = services(workers=1, processes=False, shared=service.shared_from_url(redis_server.url))
    run_spec = spec(seed=105, steps=600)
    on_a = replica_a.submit(run_spec, activations.run, follower="student-a")
    on_b = replica_b.submit(run_spec, activations.run, follower="student-b")
    wait_for(lambda: replica_a.busy() + replica_b.busy() == 1)
    seen_on_b = set()
    while state(on_b) in ("queued", "running"):
        assert replica_a.busy() + replica_b.busy() <= 1  # trained once
        if (latest := on_b.latest()) is not None and not latest.done:
            seen_on_b.add(latest.steps_done)
        time.sleep(0.02)
    assert len(seen_on_b) >= 2, seen_on_b  # B's student watched A's run grow
    a_result, b_result = finish(on_a).latest(), on_b.latest()
    np.testing.assert_array_equal(a_result.loss, b_result.loss)
    # a third replica started later is served the result at once, from Redis
    replica_c = services(workers=1, processes=False, shared=service.shared_from_url(redis_server.url))
    assert replica_c.submit(run_spec, activations.run, follower="student-c").status().state == "done"


def test_a_run_whose_replica_leaves_is_taken_over(redis_server, services):
    replica_a = services(workers=1, processes=False, shared=service.shared_from_url(redis_server.url))
    replica_b = services(workers=1, processes=False, shared=service.shared_from_url(redis_server.url))
    run_spec = spec(seed=106, steps=3000)
    replica_a.submit(run_spec, activations.run, follower="student-a")
    wait_for(lambda: replica_a.busy() == 1)
    on_b = replica_b.submit(run_spec, activations.run, follower="student-b")
    assert replica_b.busy() == 0
    replica_a.shutdown()  # the replica went away mid-run: its lease runs out and B trains the run
    wait_for(lambda: replica_b.busy() == 1, timeout=15)
    assert on_b.status().state == "running"


def test_a_run_followed_on_another_replica_is_not_cancelled_when_its_owner_is_left(redis_server, services):
    replica_a = services(workers=1, processes=False, shared=service.shared_from_url(redis_server.url))
    replica_b = services(workers=1, processes=False, shared=service.shared_from_url(redis_server.url))
    run_spec = spec(seed=107, steps=800)
    on_a = replica_a.submit(run_spec, activations.run, follower="student-a")
    wait_for(lambda: replica_a.busy() == 1)
    on_b = replica_b.submit(run_spec, activations.run, follower="student-b")
    on_a.release()  # A's student moved on; B's still watches
    assert finish(on_b, timeout=120).status().state == "done"
    # nobody follows it anywhere: cancelled
    lone = replica_a.submit(spec(seed=108, steps=5000), activations.run, follower="student-a")
    wait_for(lambda: replica_a.busy() == 1)
    lone.release()
    wait_for(lambda: replica_a.busy() == 0, timeout=5)


def test_replicas_keep_working_on_their_own_stores_when_redis_stops(redis_server, services, caplog):
    replica_a = services(workers=1, processes=False, shared=service.shared_from_url(redis_server.url))
    replica_b = services(workers=1, processes=False, shared=service.shared_from_url(redis_server.url))
    before = spec(seed=109, steps=100)
    assert finish(replica_a.submit(before, activations.run, follower="a")).status().state == "done"
    with caplog.at_level(logging.WARNING, logger="normviz.shared_runs"):
        redis_server.stop()
        for seed, replica in ((110, replica_a), (111, replica_b), (112, replica_a)):
            handle = replica.submit(spec(seed=seed, steps=100), activations.run, follower=f"s{seed}")
            assert finish(handle).status().state == "done"
        assert finish(replica_a.submit(before, activations.run, follower="a")).status().state == "done"
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 2  # said once by each replica


def test_an_unreachable_ray_address_and_a_bad_redis_url_fall_back_to_this_machine_at_once(monkeypatch, caplog):
    monkeypatch.setenv("NORMVIZ_RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("NORMVIZ_REDIS_URL", "http://redis.example:6379")
    monkeypatch.setenv("NORMVIZ_WORKERS", "0")
    monkeypatch.setattr(service, "_default", None)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="normviz.service"):
        fallback = service.default_service()
    try:
        assert time.monotonic() - started < 10
        assert fallback.cluster is None and fallback.shared is None and not fallback.processes
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert "cannot join the Ray cluster" in messages and "is not a Redis URL" in messages
        assert finish(fallback.submit(spec(seed=113, steps=50), activations.run, follower="s")).status().state == "done"
    finally:
        fallback.shutdown()
