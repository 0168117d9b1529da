"""Train what a class opens first before it is asked for: every page's default settings, then the presets of
the guided tour, one after the other on a low-priority background thread, into the shared result store.

The first student to open a view (or the whole class following the teacher's preset link) then gets a
finished result at once instead of waiting for training. A view opened while its run is still warming up
follows that run's progress (RunStore.stream), so nothing trains twice.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

from normviz.config import Spec
from normviz.runs import RunStore

Job = tuple[Callable[[Spec], Iterator], Spec]
NICENESS = 15  # background work: the sessions' own runs come first


def jobs() -> list[Job]:
    """(run, spec) of every page's defaults, then of every tour preset, each once, in the tour's order."""
    from normviz import report  # the page -> runs mapping lives there (the offline report trains the same runs)

    parts = [part for page in report.pages() for part in page.parts(page.spec_cls())]
    parts += [part for lesson in report.lessons() for part in lesson.page.parts(lesson.spec)]
    unique = {}
    for part in parts:
        unique.setdefault(part.spec.key(), (part.run, part.spec))
    return list(unique.values())


def _lower_priority() -> None:
    try:  # Linux: a thread id names the thread alone
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except (AttributeError, OSError):
        pass


def warm(store: RunStore, todo: list[Job], stop: threading.Event | None = None) -> int:
    """Run each job to its end through the store (a cached one costs nothing); returns how many finished.

    When a session asks for the run being warmed, warming gives it up: the session takes the run over at
    its own priority (a low-priority owner on a busy machine would keep it waiting). A job that fails (it
    cannot on the shipped presets) is skipped: warming must never break the app."""
    finished = 0
    for run, spec in todo:
        if stop is not None and stop.is_set():
            break
        key = spec.key()
        try:
            for _ in store.stream(key, lambda run=run, spec=spec: run(spec)):
                if (stop is not None and stop.is_set()) or store.followed(key):
                    break
            else:
                finished += 1
        except Exception:  # noqa: BLE001 (a broken preset shows its error on its page, not here)
            continue
    return finished


_started = threading.Lock()
_thread: threading.Thread | None = None


def start_once(store: RunStore) -> threading.Thread | None:
    """Start warming in this process (once); NORMVIZ_WARM_UP=0 turns it off (tests, benchmarks)."""
    global _thread
    if os.environ.get("NORMVIZ_WARM_UP", "1") == "0":
        return None
    with _started:
        if _thread is None:

            def body():
                _lower_priority()
                warm(store, jobs())

            _thread = threading.Thread(target=body, name="normviz-warm-up", daemon=True)
            _thread.start()
    return _thread
