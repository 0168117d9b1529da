"""Figures of results, built once.

A page redraws every chart on every script run, and a run that comes from the result store (a slider moved
back, a second student on the same preset) would rebuild the same Plotly figures: constructing the
Activations page's animated histograms (~650 validated bar traces) alone took 0.17 s. A live page redraws a
partial result several times a second for every session that follows the run. A result object is never
modified once handed out, so its figures are kept, keyed by the result object (and, for a partial one, its
progress) and the builder's other arguments.
Callers must not modify a figure they get (Streamlit and the exporters copy it).

The memo is bounded by the figures' size in bytes (estimated from their arrays and lists), not by a count,
and it holds each result only weakly: a result the store has evicted and no session draws any more is freed,
and its figures go with it.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go

MAX_BYTES = 128 * 2**20  # all memoised figures, across all sessions
_figures: OrderedDict[tuple, tuple[weakref.ref, go.Figure, int]] = OrderedDict()  # key -> (result, figure, bytes)
_lock = threading.Lock()
_held = 0  # bytes of the figures in _figures


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _size(obj) -> int:
    """Approximate bytes of a figure's JSON-like content: arrays by their buffers, the rest by its items."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return 64 + sum(_size(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return 8 * len(obj) + sum(_size(v) for v in obj)
    if isinstance(obj, str):
        return len(obj)
    return 8


def figure_bytes(fig: go.Figure) -> int:
    """Approximate bytes a figure holds: its traces, its animation frames and its layout."""
    parts = [t.to_plotly_json() for t in fig.data] + [f.to_plotly_json() for f in fig.frames]
    return sum(map(_size, parts)) + _size(fig.layout.to_plotly_json())


def _drop(key: tuple) -> None:
    global _held
    _held -= _figures.pop(key)[2]


def of_finished_results(build: Callable[..., go.Figure]) -> Callable[..., go.Figure]:
    """Decorate a figure builder whose first argument is a result with `done` and `progress`."""

    @functools.wraps(build)
    def cached_build(result, *args, **kwargs) -> go.Figure:
        key = (
            build.__module__,
            build.__qualname__,
            id(result),
            None if getattr(result, "done", False) else getattr(result, "progress", None),
            tuple(map(_hashable, args)),
            tuple(sorted((k, _hashable(v)) for k, v in kwargs.items())),
        )
        try:
            hash(key)
        except TypeError:
            key = None
        if key is None:
            return build(result, *args, **kwargs)
        with _lock:
            for dead in [k for k, (ref, _, _) in _figures.items() if ref() is None]:  # results freed since
                _drop(dead)
            hit = _figures.get(key)
            if hit is not None and hit[0]() is result:  # a live result: its id is not reused
                _figures.move_to_end(key)
                return hit[1]
        fig = build(result, *args, **kwargs)
        size = figure_bytes(fig)
        if size > MAX_BYTES // 4:  # one huge figure would push out everything else
            return fig
        try:
            ref = weakref.ref(result)
        except TypeError:  # a result type without weak references is not memoised
            return fig
        with _lock:
            global _held
            if key in _figures:
                _drop(key)
            _figures[key] = (ref, fig, size)
            _held += size
            while _held > MAX_BYTES:
                _drop(next(iter(_figures)))
        return fig

    return cached_build


def held_bytes() -> int:
    """Bytes of the figures the memo holds now."""
    with _lock:
        return _held


def clear() -> None:
    global _held
    with _lock:
        _figures.clear()
        _held = 0
