"""Background warming of the defaults and the tour's presets (normviz.warm)."""

import threading
import time
from types import SimpleNamespace

import pytest

from normviz import report, warm
from normviz.experiments import activations, init_sweep
from normviz.runs import RunStore, final


def test_jobs_cover_every_page_default_and_every_tour_preset_once():
    keys = [spec.key() for _, spec in warm.jobs()]
    assert len(keys) == len(set(keys))
    assert activations.ActivationsSpec().key() in keys and init_sweep.InitSweepSpec().key() in keys
    for lesson in report.lessons():
        for part in lesson.page.parts(lesson.spec):
            assert part.spec.key() in keys, lesson.name
    defaults = {p.spec.key() for page in report.pages() for p in page.parts(page.spec_cls())}
    assert set(keys[: len(defaults)]) == defaults  # the defaults come first


def test_warm_fills_the_store_so_a_page_gets_the_result_at_once():
    store = RunStore()
    spec = activations.ActivationsSpec(steps=6, probe_every=3)
    assert warm.warm(store, [(activations.run, spec)]) == 1
    cached = store.get(spec.key())
    assert cached is not None and cached.done
    assert list(store.stream(spec.key(), lambda: pytest.fail("trained again"))) == [cached]
    assert cached.summary() == final(activations.run(spec)).summary()  # what the page would have trained


def test_a_failing_job_is_skipped_and_a_stop_ends_warming():
    store = RunStore()
    good = activations.ActivationsSpec(steps=4, probe_every=2)

    def broken(spec):
        raise ValueError("broken preset")
        yield  # a generator, like every run

    assert warm.warm(store, [(broken, good.replace(seed=1)), (activations.run, good)]) == 1
    assert store.get(good.replace(seed=1).key()) is None and store.get(good.key()) is not None
    stop = threading.Event()
    stop.set()
    assert warm.warm(RunStore(), [(activations.run, good)], stop) == 0


def test_warming_is_off_in_the_tests(monkeypatch):
    monkeypatch.setenv("NORMVIZ_WARM_UP", "0")
    assert warm.start_once(RunStore()) is None


def test_a_session_asking_for_the_run_being_warmed_takes_it_over():
    """A low-priority warming thread must not keep a session waiting: it gives the run up to the session."""
    store, started = RunStore(), threading.Event()

    def slow(spec):
        started.set()
        for i in range(500):
            time.sleep(0.02)
            yield SimpleNamespace(done=False, who="warm", i=i)
        yield SimpleNamespace(done=True, who="warm", i=500)

    def session_run():
        yield SimpleNamespace(done=True, who="session", i=0)

    key_spec = activations.ActivationsSpec(seed=7)
    warming = threading.Thread(target=warm.warm, args=(store, [(slow, key_spec)]))
    warming.start()
    assert started.wait(10)
    seen = list(store.stream(key_spec.key(), session_run, poll=0.01))
    warming.join(10)
    assert not warming.is_alive() and seen[-1].who == "session"
    assert store.get(key_spec.key()).who == "session" and not store.followed(key_spec.key())
