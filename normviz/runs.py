"""Running experiments for many browser sessions: throttled progress and a shared result store.

A finished result is cached by its Spec key, so every session that asks for the same settings gets
it at once, and a run in progress is shared: the first session trains, the others follow its
progress. Models and optimizers live inside the run's generator and are never shared.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np

R = TypeVar("R")


class Throttle:
    """True about every `seconds` of the run's own time, so a page redraws about four times a second while training.

    The time from a True to the next call (the consumer drawing the partial result) does not count, and
    the next period is at least twice that time, so slow redraws on a loaded machine cannot starve the
    run. (With a fixed period, 0.5 s redraws made the Activations run yield after every step: its page
    took 75 s instead of 8 under load; bench/.)
    """

    def __init__(self, seconds: float = 0.25):
        self.seconds = self.period = seconds
        self._start, self._handed = time.monotonic(), None

    def due(self) -> bool:
        now = time.monotonic()
        if self._handed is not None:  # first call after a True: the consumer had control until now
            self.period = max(self.seconds, 2 * (now - self._handed))
            self._start, self._handed = now, None
        if now - self._start >= self.period:
            self._handed = now
            return True
        return False


class _Live:
    def __init__(self):
        self.latest = None
        self.version = 0
        self.followers = 0  # sessions waiting on this run (changed under the store's lock)
        self.finished = threading.Event()


def result_bytes(obj) -> int:
    """About how many bytes a result holds: its numpy arrays (in dataclass fields, dicts, lists, tuples)."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(result_bytes(getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return sum(result_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(result_bytes(v) for v in obj)
    return 0


class RunStore:
    """Finished results by key, bounded in bytes (least recently used dropped first), and runs in progress."""

    def __init__(self, max_bytes: int = 512 * 2**20):  # the 27 warmed defaults and presets take about 40 MB
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._done: OrderedDict[str, object] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._live: dict[str, _Live] = {}

    def _keep(self, key: str, result) -> None:
        """Store under the lock; a result larger than the whole bound is not kept."""
        size = result_bytes(result)
        if size > self.max_bytes:
            return
        self._done[key], self._sizes[key] = result, size
        self._done.move_to_end(key)
        while sum(self._sizes.values()) > self.max_bytes:
            old, _ = self._done.popitem(last=False)
            del self._sizes[old]

    def get(self, key: str):
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
        return None

    def put(self, key: str, result) -> None:
        with self._lock:
            self._keep(key, result)

    def stream(self, key: str, start: Callable[[], Iterator[R]], poll: float = 0.2) -> Iterator[R]:
        """Partial results, ending with the final one. The consumer may stop at any yield: an owner
        that stops abandons its run (a follower then takes it over) and nothing keeps training."""
        while True:
            with self._lock:
                if key in self._done:
                    self._done.move_to_end(key)
                    final = self._done[key]
                    live, owner = None, False
                elif key in self._live:
                    live, owner = self._live[key], False
                else:
                    live, owner = self._live.setdefault(key, _Live()), True
            if live is None:
                yield final
                return
            if owner:
                yield from self._own(key, live, start)
                return
            seen = 0
            with self._lock:
                live.followers += 1
            try:
                while not live.finished.wait(poll):
                    if live.version != seen and live.latest is not None:
                        seen = live.version
                        yield live.latest
            finally:
                with self._lock:
                    live.followers -= 1
            # the owner finished (the result is in _done) or gave up (we take over): go round again

    def _own(self, key: str, live: _Live, start: Callable[[], Iterator[R]]) -> Iterator[R]:
        completed = False
        try:
            for partial in start():
                live.latest, live.version = partial, live.version + 1
                yield partial
            completed = True
        finally:
            with self._lock:
                self._live.pop(key, None)
                if completed and live.latest is not None:
                    self._keep(key, live.latest)
            live.finished.set()

    def followed(self, key: str) -> bool:
        """Whether a session is waiting on the run in progress for `key` (a background owner then yields it)."""
        with self._lock:
            live = self._live.get(key)
            return live is not None and live.followers > 0

    def clear(self) -> None:
        """Forget the finished results (benchmarks measure uncached runs this way)."""
        with self._lock:
            self._done.clear()
            self._sizes.clear()

    def running(self) -> int:
        """How many runs are training now (for tests and the load benchmark)."""
        with self._lock:
            return len(self._live)


STORE = RunStore()


def final(iterator: Iterator[R]) -> R:
    """The last item of a run (the CLI and tests do not need the partial ones)."""
    last = None
    for last in iterator:  # noqa: B007 (only the last one is wanted)
        pass
    return last
