"""One module per experiment, each with its Spec, its Result and `run(spec)`, which yields partial results and
ends with the final one (every Result has `progress`, `done`, `diverged_at` and `summary()`). The views
(normviz/views.py) put them on pages and in the CLI."""

import importlib
from typing import Protocol, runtime_checkable

from normviz.config import Spec


@runtime_checkable
class Result(Protocol):
    """What the front ends rely on in every experiment's result: the pages' live frames (`progress`, `done`),
    the CLI's JSON (`summary()`). An experiment that trains also records `diverged_at`, a list with one entry
    per network it trains (the step its loss became NaN or infinite, or None): in the order of its `models`
    where it names them, and per norm and batch size in the batch-size sweep. Its lesson reports them."""

    spec: Spec
    done: bool

    @property
    def progress(self) -> float: ...

    def summary(self) -> dict: ...


# module -> the Spec class its run takes
SPECS = {
    "activations": "ActivationsSpec",
    "init_sweep": "InitSweepSpec",
    "running_stats": "RunningStatsSpec",
    "by_hand": "ByHandSpec",
    "inference": "InferenceSpec",
    "batch_size": "BatchSizeSpec",
    "alternatives": "AxesSpec",
    "norm_zoo": "ZooSpec",
    "norm_cost": "CostSpec",
    "sync_bn": "SyncBNSpec",
    "rnn_norms": "RNNSpec",
    "why_lr_range": "LrRangeSpec",
    "why_landscape": "LandscapeSpec",
    "why_noisy": "NoisySpec",
    "why_scale": "ScaleSpec",
    "why_adabn": "AdaBNSpec",
}


def spec_classes() -> dict[str, type[Spec]]:
    """Each experiment's Spec class by module name (imports the modules)."""
    return {m: getattr(importlib.import_module(f"normviz.experiments.{m}"), c) for m, c in SPECS.items()}


def run_of(spec_cls: type[Spec]):
    """The `run` that takes this experiment Spec."""
    return importlib.import_module(spec_cls.__module__).run
