"""The "Why BN helps" page: one spec for its five experiments (`view` picks one, `sub()` gives that experiment's own
spec), its presets, and what the page says around each view. The experiments live in why_lr_range, why_landscape,
why_noisy, why_scale and why_adabn; each is also a CLI command.
"""

from __future__ import annotations

from dataclasses import dataclass

from normviz.config import Preset, ViewsSpec, param
from normviz.experiments import why_adabn, why_landscape, why_lr_range, why_noisy, why_scale

VIEWS = ("lr-range", "landscape", "noisy", "scale", "adabn")
VIEW_TITLES = {
    "lr-range": "The usable learning-rate range",
    "landscape": "A smoother loss landscape",
    "noisy": "Noisy BN: covariate shift is not the reason",
    "scale": "Scale invariance and the effective learning rate",
    "adabn": "Domain shift and re-estimated statistics (AdaBN)",
}
VIEW_SPECS = {
    "lr-range": why_lr_range.LrRangeSpec,
    "landscape": why_landscape.LandscapeSpec,
    "noisy": why_noisy.NoisySpec,
    "scale": why_scale.ScaleSpec,
    "adabn": why_adabn.AdaBNSpec,
}
SHARED = ["depth", "width", "steps", "batch_size"]
PAGE_FIELDS = {  # the sidebar, in order; each view reads only its own
    "lr-range": SHARED + ["rates", "lr_min", "lr_max"],
    "landscape": SHARED + ["lr", "check_every", "step_sizes", "step_max"],
    "noisy": SHARED + ["noisy_lr", "noise_mean", "noise_scale", "probe_every"],
    "scale": SHARED + ["lr", "weight_decay", "bn_eps", "scale_c"],
    "adabn": SHARED + ["lr", "shift", "brightness", "contrast", "pixels", "adapt_samples", "test_batch"],
}


@dataclass(frozen=True)
class WhyBNSpec(
    ViewsSpec,
    why_lr_range.LrRangeSpec,
    why_landscape.LandscapeSpec,
    why_noisy.NoisySpec,
    why_scale.ScaleSpec,
    why_adabn.AdaBNSpec,
):
    """Every setting of the Why BN helps page; `view` picks the experiment, `sub()` gives its own spec."""

    view: str = param(
        "lr-range",
        "what to show: " + "; ".join(f"{v}: {t}" for v, t in VIEW_TITLES.items()),
        choices=VIEWS,
        choice_labels=VIEW_TITLES,
        label="Experiment",
    )

    VIEW_SPECS = VIEW_SPECS
    VIEW_FIELDS = PAGE_FIELDS


PRESETS = {
    "BN widens the usable learning rates": Preset(
        {"view": "lr-range"},
        "Twelve learning rates from 0.001 to 10, each with and without BN, trained together. Read off the rates "
        "where each curve stays above the dotted 90% line, and where each peaks: with BN both the range and the "
        "best rate reach higher. The numbers are below the chart.",
    ),
    "a smoother loss landscape": Preset(
        {"view": "landscape"},
        "At each checkpoint we step along the gradient with eight step sizes and look at the loss there: the band "
        "is the lowest to the highest loss. With BN the band is narrower and the gradient changes less along the "
        "step: a larger step is safer, which is why higher learning rates work.",
    ),
    "noisy BN still trains": Preset(
        {"view": "noisy"},
        "After every BN layer the noisy network's units get a random scale and offset, new every step: the "
        "distribution each layer sees shifts more than without BN at all. Yet it trains about as well as BN, "
        "and far better than no BN.",
    ),
    "weight decay raises the effective rate": Preset(
        {"view": "scale"},
        "With BN after a layer, only the direction of its weights matters. Weight decay shrinks ‖w‖, and a "
        "gradient step then turns the direction faster: lr/‖w‖² rises. A network without decay, given that "
        "rate, predicts exactly what the decayed one predicts.",
    ),
    "ε breaks exact scale invariance": Preset(
        {"view": "scale", "bn_eps": 1e-5},
        "With torch's ε = 1e-5 in every BN layer, BN(c·h) is no longer exactly BN(h): the matched network drifts "
        "away from the decayed one, and they no longer predict the same class on every test image.",
    ),
    "AdaBN undoes a contrast change": Preset(
        {"view": "adabn", "shift": "contrast"},
        "Lower contrast moves the mean and shrinks the spread of every first-layer unit. In eval mode the training "
        "statistics no longer fit and accuracy collapses; re-estimating them on a few dozen unlabelled shifted "
        "images (AdaBN) brings it back.",
    ),
    "inverted digits: statistics are not enough": Preset(
        {"view": "adabn", "shift": "invert"},
        "Inversion flips the sign of every first-layer unit, and a standard deviation cannot be negative: "
        "re-estimated statistics cannot undo it, and no way of computing BN's statistics helps.",
    ),
}

MODULES = {
    why_lr_range.LrRangeSpec: why_lr_range,
    why_landscape.LandscapeSpec: why_landscape,
    why_noisy.NoisySpec: why_noisy,
    why_scale.ScaleSpec: why_scale,
    why_adabn.AdaBNSpec: why_adabn,
}


def pytorch_snippet(spec) -> str:
    """The snippet of the view `spec` belongs to (a WhyBNSpec: its current view)."""
    if isinstance(spec, WhyBNSpec):
        spec = spec.sub()
    return MODULES[type(spec)].pytorch_snippet(spec)
