"""Every view of the app, written once. A view's name is its page file (pages/<name>.py), its URL path
(/<name>), its CLI command, its key prefix in the session, and its id in the tour and the tests. app.py builds
the navigation from VIEWS; the pages, the CLI, the tour, the report, the warm-up, the cost cap and the page
tests iterate it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from normviz.config import Preset, Spec, ViewsSpec
from normviz.experiments import Result, run_of

TRAINING = "Training"  # a part's progress label when its view runs one experiment


@dataclass(frozen=True)
class Part:
    """One run behind a view: the experiment (a module of normviz.experiments with one Spec and its `run`),
    the view's settings that experiment reads, all of the view's settings, and the label of its progress."""

    experiment: str
    run: Callable[[Spec], Iterator[Result]]
    spec: Spec
    page: Spec
    label: str = TRAINING

    @classmethod
    def of(cls, spec_cls: type[Spec], page: Spec, label: str = TRAINING) -> Part:
        experiment = spec_cls.__module__.rpartition(".")[2]
        return cls(experiment, run_of(spec_cls), page.project(spec_cls), page, label)


@dataclass(frozen=True)
class View:
    name: str
    title: str
    icon: str  # a Material Symbols name
    experiment: str  # normviz.experiments.<experiment> holds the view's Spec class
    spec_name: str  # the Spec class of the whole page (all its settings)
    shown: tuple[str, ...] = ()  # URL parameters of its main-area controls: what the charts show, not what trains
    fields: tuple[str, ...] = ()  # its sidebar's settings in order; () for a ViewsSpec's own, or every setting
    runs: tuple[tuple[str, str], ...] = ()  # ("module.SpecClass", label) of each experiment, when it runs several
    summary: str = ""  # what its CLI command does, in one line

    @property
    def page(self) -> str:
        return f"pages/{self.name}.py"

    @property
    def spec_cls(self) -> type[Spec]:
        return getattr(self._module(), self.spec_name)

    @property
    def sidebar(self) -> list[str] | None:
        """The settings its sidebar shows, in order (None: every one of its Spec's)."""
        if self.fields:
            return list(self.fields)
        return self.spec_cls.sidebar() if issubclass(self.spec_cls, ViewsSpec) else None

    def parts(self, spec: Spec) -> list[Part]:
        """The runs behind the view at these settings: a ViewsSpec's chosen experiment, each of `runs`, or its own."""
        if isinstance(spec, ViewsSpec):
            return [Part.of(spec.VIEW_SPECS[spec.view], spec)]
        if self.runs:
            return [Part.of(_spec_class(where), spec, label) for where, label in self.runs]
        return [Part.of(type(spec), spec)]

    def panels(self, part: Part, result, final: bool, font: int, **shown) -> list:
        """What the view draws from one part's result (normviz.panels), by its lesson module; `shown`: the
        values of its main-area controls (the lesson's defaults where not given)."""
        return self._lesson().panels(part, result, final, font, **shown)

    @property
    def presets(self) -> dict[str, Preset]:
        """Its presets by name (the settings each changes, what to notice), from its lesson module."""
        return self._lesson().PRESETS

    def _module(self):
        return importlib.import_module(f"normviz.experiments.{self.experiment}")

    def _lesson(self):
        """normviz.lessons.<name>: what the view says and draws, and its presets."""
        return importlib.import_module(f"normviz.lessons.{self.name}")


# sidebars in order (the lesson's knobs first; ui.spec_controls puts the data, seed and recording settings
# in an expander)
_DATA = ("dataset", "data_file", "upload", "n_samples")
_NET = ("depth", "width")
_RUNNING_STATS_FIELDS = (
    *("momenta", "cma", "convention", "var_estimator", "running_init", "bias_correction", "schedule", "lr"),
    *("batch_size", "steps", "pop_every", "recalibrate_batches", *_DATA, "test_fraction", "scaling", "noise"),
    *(*_NET, "activation", "init", "init_std", "norm_place", "seed"),
)
_TRAIN_VS_INFERENCE_FIELDS = (
    *("batch_size", "norms", "image", "train_batch", "train_epochs", "epochs", "sizes", "lr", "lr_scaling"),
    *("momentum", "rmax", "dmax", "groups", "stream_max_batch", *_NET, "seed", *_DATA),
)
_BY_HAND_FIELDS = (
    *("convention", "momentum", "eps", "var_estimator", "x", "gamma", "beta", "running_mean", "running_var"),
    *("dy", "x_new"),
)
VIEWS = (
    View(
        "activations",
        "Activations",
        "bar_chart",
        "activations",
        "ActivationsSpec",
        ("quantity",),
        summary="train a BN and a no-BN MLP side by side; per-layer statistics and accuracies",
    ),
    View(
        "init_sweep",
        "Init-scale sweep",
        "grid_view",
        "init_sweep",
        "InitSweepSpec",
        summary="the DLfS init-scale sweep: init stds x (BN, no BN), train accuracy per epoch",
    ),
    View(
        "running_stats",
        "Running statistics",
        "show_chart",
        "running_stats",
        "RunningStatsSpec",
        ("momenta_shown", "layer", "channel", "population"),
        _RUNNING_STATS_FIELDS,
        summary="BN's running statistics for several momenta in one run: errors against the population "
        "statistics and eval accuracy per momentum",
    ),
    View(
        "train_vs_inference",
        "Train vs inference",
        "compare_arrows",
        "inference",
        "TrainVsInferenceSpec",
        fields=_TRAIN_VS_INFERENCE_FIELDS,
        runs=(
            ("inference.InferenceSpec", "Training the BN MLP and CNN"),
            ("batch_size.BatchSizeSpec", "Sweeping batch sizes"),
        ),
        summary="a BN MLP and CNN in eval vs train mode (batch size 1, batch-mates), then BN, GroupNorm, "
        "LayerNorm and Batch Renorm trained at several batch sizes",
    ),
    View(
        "alternatives",
        "Alternatives",
        "tune",
        "alternatives",
        "AlternativesSpec",
        ("tensor_norm",),
        summary="BN's alternatives, one experiment per --view: axes, every-norm, cost, sync-bn, rnn",
    ),
    View(
        "by_hand",
        "BN by hand",
        "edit_note",
        "by_hand",
        "ByHandSpec",
        ("feature",),
        _BY_HAND_FIELDS,
        summary="one BatchNorm1d training step by hand: batch statistics, x_hat, y, running statistics, "
        "gradients, each against torch",
    ),
    View(
        "why_bn",
        "Why BN helps",
        "psychology",
        "why_bn",
        "WhyBNSpec",
        ("layer",),
        summary="why BN helps, one experiment per --view: lr-range, landscape, noisy, scale, adabn",
    ),
)
BY_NAME = {v.name: v for v in VIEWS}


def train(parts: list[Part], on_progress: Callable[[float], None]) -> list[Result]:
    """Run each part to its end, in turn, and return their final results; on_progress(share of all done)."""
    results = []
    for i, part in enumerate(parts):
        result = None
        for result in part.run(part.spec):
            on_progress((i + min(result.progress, 1.0)) / len(parts))
        results.append(result)
    return results


def _spec_class(where: str) -> type[Spec]:
    """ "module.SpecClass" (a module of normviz.experiments) -> the class."""
    module, _, name = where.rpartition(".")
    return getattr(importlib.import_module(f"normviz.experiments.{module}"), name)


def of_spec(spec_cls: type[Spec]) -> View | None:
    """The view whose page settings are `spec_cls`, if one is."""
    return next((v for v in VIEWS if v.spec_cls is spec_cls), None)


def command_words(spec_cls: type[Spec]) -> list[str]:
    """The CLI words that run an experiment Spec or a view's: the view's command, and the `--view` or `--part`
    that picks the experiment within it."""
    for v in VIEWS:
        if v.spec_cls is spec_cls:
            return [v.name]
        if issubclass(v.spec_cls, ViewsSpec):
            picks = [("--view", name) for name, cls in v.spec_cls.VIEW_SPECS.items() if cls is spec_cls]
        else:
            picks = [
                ("--part", spec_cls.__module__.rpartition(".")[2])
                for where, _ in v.runs
                if _spec_class(where) is spec_cls
            ]
        if picks:
            return [v.name, *picks[0]]
    raise KeyError(f"no view runs {spec_cls.__name__}")


def view(name: str) -> View:
    """The view of that name; KeyError names the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no view named {name!r}; known: {', '.join(BY_NAME)}") from None
