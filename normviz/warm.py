"""Train what a class opens first before it is asked for: every page's default settings, then the presets of
the guided tour, submitted to the run service at WARM priority (normviz.service), into its memory store and
disk cache.

The first student to open a view (or the whole class following the teacher's preset link) then gets a
finished result at once instead of waiting for training. A view opened while its run is still warming up
follows that run, so nothing trains twice; a session's own run always takes the next free worker first.
`python -m normviz warm` does the same ahead of class, into the disk cache.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

from normviz.config import Spec
from normviz.service import WARM, RunHandle, RunService, default_service

Job = tuple[Callable[[Spec], Iterator], Spec]


def jobs() -> list[Job]:
    """(run, spec) of every page's defaults, then of every tour preset, each once, in the tour's order."""
    from normviz import report  # its lessons: every preset, in the tour's order

    parts = [part for page in report.pages() for part in page.view.parts(page.spec_cls())]
    parts += [part for lesson in report.lessons() for part in lesson.page.view.parts(lesson.spec)]
    unique = {}
    for part in parts:
        unique.setdefault(part.spec.key(), (part.run, part.spec))
    return list(unique.values())


def submit(service: RunService, todo: list[Job]) -> list[RunHandle]:
    """Queue every job at WARM priority; nobody follows them, so each runs to its end (a cached one is done)."""
    return [service.submit(spec, run, follower=None, priority=WARM) for run, spec in todo]


def warm(service: RunService, todo: list[Job], on_finished: Callable[[RunHandle], None] | None = None) -> int:
    """Run every job through the service and wait for all; returns how many finished. A job that fails (it cannot
    on the shipped presets) is only counted out: warming must never break the app."""
    pending, finished = submit(service, todo), 0
    while pending:
        still = []
        for handle in pending:
            state = handle.status().state
            if state in ("queued", "running"):
                still.append(handle)
                continue
            finished += state == "done"
            if on_finished is not None:
                on_finished(handle)
        pending = still
        if pending:
            time.sleep(0.1)
    return finished


def main() -> int:
    """`python -m normviz warm`: every job into the disk cache on one worker process per core, with a progress bar."""
    from tqdm import tqdm

    from normviz.service import disk_cache, workers_from_env

    cache = disk_cache()
    if cache is None:
        print(
            "error: the disk cache is off (NORMVIZ_CACHE_DIR=off): nothing would outlive this command", file=sys.stderr
        )
        return 2
    every, failed = jobs(), []
    todo = [(run, spec) for run, spec in every if cache.get(spec.key()) is None]  # no worker starts for none
    n = workers_from_env()
    service = RunService(n or None, processes=n > 0, cache=cache) if todo else None
    try:
        with tqdm(
            total=len(every), initial=len(every) - len(todo), desc="warm", unit="run", disable=not sys.stderr.isatty()
        ) as bar:

            def done(handle: RunHandle) -> None:
                bar.update(1)
                if handle.status().state != "done":
                    failed.append(f"{handle.key}: {handle.status().error}")

            finished = warm(service, todo, done) if todo else 0
    except KeyboardInterrupt:
        print("warm: stopped", file=sys.stderr)
        return 130
    finally:
        if service is not None:
            service.shutdown()
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    cached = len(every) - len(todo) + finished
    print(f"{cached} of {len(every)} runs are in the disk cache at {cache.directory} ({finished} trained now)")
    return 0 if cached == len(every) else 1


_started = threading.Lock()
_thread: threading.Thread | None = None


def start_once(service: RunService | None = None) -> threading.Thread | None:
    """Queue the warm-up jobs once per server, from a background thread (checking the disk cache takes a moment);
    NORMVIZ_WARM_UP=0 turns it off (tests, benchmarks)."""
    global _thread
    if os.environ.get("NORMVIZ_WARM_UP", "1") == "0":
        return None
    with _started:
        if _thread is None:
            _thread = threading.Thread(
                target=lambda: submit(service or default_service(), jobs()), name="normviz-warm-up", daemon=True
            )
            _thread.start()
    return _thread
