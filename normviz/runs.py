"""What every run shares: the throttle on its partial results, and the memory store of finished results
(by Spec key; normviz.service puts and reads them, and shares the runs in progress).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
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
    """Finished results by key, bounded in bytes (least recently used dropped first)."""

    def __init__(self, max_bytes: int = 512 * 2**20):  # the 27 warmed defaults and presets take about 40 MB
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._done: OrderedDict[str, object] = OrderedDict()
        self._sizes: dict[str, int] = {}

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

    def clear(self) -> None:
        """Forget the finished results (benchmarks measure uncached runs this way)."""
        with self._lock:
            self._done.clear()
            self._sizes.clear()


STORE = RunStore()


def final(iterator: Iterator[R]) -> R:
    """The last item of a run (the CLI and tests do not need the partial ones)."""
    last = None
    for last in iterator:  # noqa: B007 (only the last one is wanted)
        pass
    return last
