"""The "Why BN helps" page: one spec for its five experiments (`view` picks one, `sub()` gives that experiment's own
spec). The experiments live in why_lr_range, why_landscape, why_noisy, why_scale and why_adabn, each also run by the
CLI (`why_bn --view`); what the page says around them, and its presets, are in normviz/lessons/why_bn.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from normviz.config import ViewsSpec, param
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
