"""Warming the defaults and the tour's presets through the run service (normviz.warm)."""

import pickle
import time

import pytest

from normviz import report, warm
from normviz.experiments import activations, init_sweep
from normviz.runs import final
from normviz.service import RunService


@pytest.fixture
def svc():
    service = RunService(1, processes=False, cache=None, heartbeat_timeout=60.0)
    yield service
    service.shutdown()


def test_jobs_cover_every_page_default_and_every_tour_preset_once():
    keys = [spec.key() for _, spec in warm.jobs()]
    assert len(keys) == len(set(keys))
    assert activations.ActivationsSpec().key() in keys and init_sweep.InitSweepSpec().key() in keys
    for lesson in report.lessons():
        for part in lesson.page.view.parts(lesson.spec):
            assert part.spec.key() in keys, lesson.name
    defaults = {p.spec.key() for page in report.pages() for p in page.view.parts(page.spec_cls())}
    assert set(keys[: len(defaults)]) == defaults  # the defaults come first


def test_every_job_can_be_sent_to_a_worker_process():
    for run, _ in warm.jobs():
        assert pickle.loads(pickle.dumps(run)) is run  # a module-level function, sent by reference


def test_warm_fills_the_service_so_a_page_gets_the_result_at_once(svc):
    spec = activations.ActivationsSpec(steps=6, probe_every=3)
    finished = []
    assert warm.warm(svc, [(activations.run, spec)], finished.append) == 1
    cached = svc.result(spec.key())
    assert cached is not None and cached.done and finished[0].latest() is cached
    page = svc.submit(spec, activations.run, follower="student")
    assert page.status().state == "done" and page.latest() is cached  # nothing trains again
    assert cached.summary() == final(activations.run(spec)).summary()  # what the page would have trained


def broken(spec):
    raise ValueError("broken preset")
    yield  # a generator, like every run


def test_a_failing_job_is_counted_out_and_the_others_finish(svc):
    good = activations.ActivationsSpec(steps=4, probe_every=2)
    assert warm.warm(svc, [(broken, good.replace(seed=1)), (activations.run, good)]) == 1
    assert svc.result(good.replace(seed=1).key()) is None and svc.result(good.key()) is not None


def test_a_session_run_goes_ahead_of_the_warm_up_jobs(svc):
    long = activations.ActivationsSpec(steps=5000, probe_every=1000)
    warming = warm.submit(svc, [(activations.run, long.replace(seed=s)) for s in (1, 2)])
    session = svc.submit(long.replace(seed=3), activations.run, follower="student")
    deadline = time.monotonic() + 30
    while session.status().state != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert session.status().state == "running"
    assert [h.status().state for h in warming] == ["queued", "queued"]  # the first one stopped and waits again


def test_warming_is_off_in_the_tests(monkeypatch, svc):
    monkeypatch.setenv("NORMVIZ_WARM_UP", "0")
    assert warm.start_once(svc) is None


def test_the_warm_command_refuses_to_run_without_a_disk_cache(monkeypatch, capsys):
    from normviz import cli

    monkeypatch.setenv("NORMVIZ_CACHE_DIR", "off")
    assert cli.main(["warm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the disk cache is off") and err.count("\n") == 1
