"""Two app replicas on a real two-node Ray cluster and a real Redis, in headless Chromium: runs train on Ray
workers and stream to the page, a run is shared across replicas and trained once, a killed Ray worker gives
the page one line and a Retry that works, and stopping Redis leaves both replicas working."""

from __future__ import annotations

import os
import signal
import threading
import time

import e2e_helpers as h
import psutil
import pytest

from normviz.service import KILLED
from tests.cluster import start_ray, start_redis

pytestmark = [pytest.mark.browser, pytest.mark.cluster]
TITLE = "ray::normviz:"  # a Ray worker's process title while it trains a run (normviz.ray_pool)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, browser):
    folder = tmp_path_factory.mktemp("cluster")
    redis = start_redis(folder)
    ray = start_ray(folder, nodes=2)
    env = {
        "NORMVIZ_RAY_ADDRESS": ray.address,
        "NORMVIZ_REDIS_URL": redis.url,
        "NORMVIZ_CACHE_DIR": "off",
        "NORMVIZ_WARM_UP": "0",
    }
    started = []
    try:
        for name in ("a", "b"):
            started.append(h.start_server(folder / f"replica-{name}.log", env=env))
        for server in started:  # each replica's first session imports the experiments and joins the cluster
            page = browser.new_page()
            h.goto_idle(page, url(server, 8100, steps=200))
            page.close()
        yield started, redis
    finally:
        for server in started:
            h.stop_server(server)
        ray.stop()
        redis.stop()


def training() -> dict[str, list[psutil.Process]]:
    """The Ray worker processes training now, by task title."""
    found: dict[str, list[psutil.Process]] = {}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"]
        if cmdline and cmdline[0].startswith(TITLE):
            found.setdefault(cmdline[0].strip(), []).append(process)
    return found


def wait_training(timeout: float = 120) -> list[psutil.Process]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if found := training():
            return [p for group in found.values() for p in group]
        time.sleep(0.1)
    raise AssertionError("no Ray worker started training")


def url(server, seed: int, steps: int = 800) -> str:
    return f"{server.base}/activations?seed={seed}&steps={steps}"


def open_page(browser, address: str, watch: bool = True):
    page = browser.new_context(viewport=h.VIEWPORT).new_page()
    if watch:
        page.add_init_script(f"({h.WATCH_FRAMES})()")
    page.goto(address, wait_until="domcontentloaded")
    return page


def frames(page) -> int:
    return page.evaluate("() => window.__live.frames.size")


def test_a_run_trains_on_a_ray_worker_streams_to_the_page_and_is_served_at_once_by_the_other_replica(browser, replicas):
    (a, b), _ = replicas
    page_a = open_page(browser, url(a, 8101))
    try:
        workers = wait_training()
        app_pids = {a.proc.pid, b.proc.pid}
        assert all(w.pid not in app_pids and w.parent().name() == "raylet" for w in workers)
        h.wait_idle(page_a)
        assert frames(page_a) >= 2 and not h.problems(page_a)  # partial results reached the page as it trained
        charts_a = h.chart_digest(page_a)
        took = {}
        for name, server in (("A", a), ("B", b)):  # B reads it from Redis, A from its memory
            again = open_page(browser, "about:blank")
            took[name] = h.goto_idle(again, url(server, 8101))
            assert frames(again) == 0  # no training frame: the finished result was served
            assert h.chart_digest(again) == charts_a and not training()
            again.context.close()
        h.report(
            f"cluster: a finished run opened again in {took['A']:.1f} s on its replica, {took['B']:.1f} s on the other"
        )
    finally:
        page_a.context.close()


def test_two_replicas_asked_for_the_same_new_spec_train_it_once(browser, replicas):
    (a, b), _ = replicas
    pages = [open_page(browser, url(server, 8102, steps=1500)) for server in (a, b)]
    most = 0
    watching = threading.Event()

    def count():
        nonlocal most
        while not watching.is_set():
            most = max([most, *(len(group) for group in training().values())])
            time.sleep(0.1)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        for page in pages:
            h.wait_idle(page)
        watching.set()
        counter.join()
        assert most == 1  # one Ray worker trained it
        assert all(frames(page) >= 1 for page in pages)  # both students watched it grow
        assert h.chart_digest(pages[0]) == h.chart_digest(pages[1])
    finally:
        watching.set()
        for page in pages:
            page.context.close()


def test_a_killed_ray_worker_gives_one_line_and_a_retry_that_works(browser, replicas):
    (a, _), _ = replicas
    page = open_page(browser, url(a, 8103, steps=1500), watch=False)
    try:
        page.wait_for_selector('[data-testid="stProgress"]', timeout=120_000)
        (worker,) = wait_training()
        os.kill(worker.pid, signal.SIGKILL)
        page.locator('[data-testid="stAlert"]', has_text=KILLED).wait_for(timeout=60_000)
        (error,) = h.alerts(page, "Error")
        assert error.strip().splitlines()[-1] == KILLED  # one line, after the alert's icon name
        page.get_by_role("button", name="Retry").click()
        page.wait_for_selector('[data-testid="stProgress"]', timeout=120_000)
        h.wait_idle(page)
        assert len(page.locator('[data-testid="stPlotlyChart"]').all()) == 3 and not h.problems(page)
    finally:
        page.context.close()


def test_both_replicas_keep_working_when_redis_stops(browser, replicas):
    (a, b), redis = replicas
    redis.stop()
    for server, seed in ((a, 8104), (b, 8105)):
        page = open_page(browser, url(server, seed, steps=300), watch=False)
        try:
            h.wait_idle(page)
            assert len(page.locator('[data-testid="stPlotlyChart"]').all()) == 3 and not h.problems(page)
        finally:
            page.context.close()
    for server in (a, b):  # said once per outage: this one has not ended
        log = server.log_text()
        assert log.count("is unreachable") == log.count("is reachable again") + 1, log[-2000:]
