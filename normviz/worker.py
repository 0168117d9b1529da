"""What a worker runs, in a process of the run service's pool (normviz.service) or a Ray task
(normviz.ray_pool): a run to its end, its partial results throttled, its outcome in one line."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator

from normviz import data, persist, runtime
from normviz.config import SpecError
from normviz.data import DataError

log = logging.getLogger(__name__)


def preload_experiments() -> None:
    """A worker process imports every experiment now, not when its first run waits for them."""
    from normviz.experiments import SPECS

    for name in SPECS:
        importlib.import_module(f"normviz.experiments.{name}")


def train_steps(run: Callable, spec, interval: float, upload: data.Upload | None, encoded: bool) -> Iterator[tuple]:
    """Run to the end: ("partial", result) about every `interval` s, then one final ("done", result),
    ("cancelled", None) or ("failed", one line). With `encoded`, results are arrays and JSON (persist.encode),
    never pickles, as they leave a worker process."""
    held = data.register(upload) if upload is not None else None  # noqa: F841 (a process's own registry is empty)
    sent, result = float("-inf"), None
    try:
        for result in run(spec):
            runtime.check_cancelled()
            now = time.monotonic()
            if not result.done and now - sent >= interval:  # encoded now: later steps may change its arrays
                yield "partial", persist.encode(result) if encoded else result
                sent = now
    except runtime.Cancelled:
        yield "cancelled", None
        return
    except (SpecError, DataError, OSError) as exc:
        yield "failed", f"Cannot run with these settings: {exc}"
        return
    except Exception as exc:  # noqa: BLE001 (any error of a run becomes one line; the server log has the rest)
        log.exception("run %s failed", getattr(run, "__qualname__", run))
        yield "failed", f"The run stopped with an error ({type(exc).__name__}); the server log has the details."
        return
    if result is None:
        yield "failed", "The run produced no result."
    else:
        yield "done", persist.encode(result) if encoded else result
