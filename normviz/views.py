"""Every view of the app, written once. A view's name is its page file (pages/<name>.py), its URL path
(/<name>), its key prefix in the session, and its id in the tour and the tests. app.py builds the navigation
from VIEWS; the tour, the report, the warm-up, the cost cap and the page tests iterate it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from normviz.config import Preset, Spec


@dataclass(frozen=True)
class View:
    name: str
    title: str
    icon: str  # a Material Symbols name
    experiment: str  # normviz.experiments.<experiment> holds the view's Spec class and PRESETS
    spec_name: str  # the Spec class of the whole page (all its settings)
    shown: tuple[str, ...] = ()  # URL parameters of its main-area controls: what the charts show, not what trains

    @property
    def page(self) -> str:
        return f"pages/{self.name}.py"

    @property
    def spec_cls(self) -> type[Spec]:
        return getattr(self._module(), self.spec_name)

    @property
    def presets(self) -> dict[str, Preset]:
        return self._module().PRESETS

    def _module(self):
        return importlib.import_module(f"normviz.experiments.{self.experiment}")


VIEWS = (
    View("activations", "Activations", "bar_chart", "activations", "ActivationsSpec", ("quantity",)),
    View("init_sweep", "Init-scale sweep", "grid_view", "init_sweep", "InitSweepSpec"),
    View(
        "running_stats",
        "Running statistics",
        "show_chart",
        "running_stats",
        "MomentumSpec",
        ("momenta_shown", "layer", "channel", "population"),
    ),
    View("train_vs_inference", "Train vs inference", "compare_arrows", "inference", "TrainVsInferenceSpec"),
    View("alternatives", "Alternatives", "tune", "alternatives", "AlternativesSpec", ("tensor_norm",)),
    View("by_hand", "BN by hand", "edit_note", "by_hand", "ByHandSpec", ("feature",)),
    View("why_bn", "Why BN helps", "psychology", "why_bn", "WhyBNSpec", ("layer",)),
)
BY_NAME = {v.name: v for v in VIEWS}


def view(name: str) -> View:
    """The view of that name; KeyError names the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no view named {name!r}; known: {', '.join(BY_NAME)}") from None
