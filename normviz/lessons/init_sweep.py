"""What the Init-scale sweep page says and draws: the set-up in one line, the grid with its caption, and why
PyTorch's running-var start of 1 hides early learning."""

from __future__ import annotations

import numpy as np

from normviz import snippets
from normviz.experiments.init_sweep import MOMENTUM, InitSweepResult, InitSweepSpec
from normviz.figures.activations import init_sweep_grid
from normviz.panels import Chart, Panel, Text
from normviz.views import Part


def describe(spec: InitSweepSpec) -> str:
    """The set-up in one line, from the settings (the defaults are the book's)."""
    n_test, n_train = snippets.split_sizes(spec)
    return (
        f"{spec.scales} weight-init stds from {spec.scale_max:g} down to {spec.scale_min:g}; for each, an MLP of "
        f"{spec.depth} hidden layers of {spec.width} {spec.activation} units, with and without BN (eps {spec.eps:g}), "
        f"SGD lr {spec.lr:g}, "
        f"batch {spec.batch_size}, {n_train:,} training samples, {spec.epochs} epochs. All {2 * spec.scales} "
        "networks train as one stacked computation."
    )


def running_init_note(result: InitSweepResult) -> str:
    """Why PyTorch's running-var start of 1 hides early learning, with this run's numbers."""
    spec, var = result.spec, result.input_var
    small = int(np.argmin(np.abs(np.log(result.scales) - np.log(1e-2))))  # the scale nearest 0.01
    steps = snippets.split_sizes(spec)[1] // spec.batch_size
    layers = f"layers 2-{spec.depth}" if spec.depth > 2 else "layer 2"
    at = [
        f"at init std {result.scales[k]:.2g} it is {var[k, 0]:.1g} in layer 1"
        + (f" and {var[k, 1:].min():.1g} to {var[k, 1:].max():.1g} in {layers}" if spec.depth > 1 else "")
        for k in sorted({small, len(result.scales) - 1})
    ]
    text = (
        "Eval mode divides by √(running var + ε). PyTorch starts the running variance at **1**; the book starts "
        "it at **0**. With a small init std the true variance of a BN layer's input is tiny: "
        f"{'; '.join(at)} (measured on the training set at initialisation). Until the start value of 1 has faded, "
        f"eval mode divides by about 1 instead of √(var + ε) (at least √ε = {spec.eps**0.5:.1g}): the "
        "activations shrink towards 0, and eval-mode accuracy sits near chance **even though training works**. "
        f"With momentum {MOMENTUM:g} the start still weighs {1 - MOMENTUM:g}^{steps} = {(1 - MOMENTUM) ** steps:.0%} "
        f"after one epoch of {steps} steps."
    )
    if spec.running_init != "pytorch":
        return text + " Switch *Running init* to *pytorch* to see it."
    if not result.done:
        return text
    stuck = [int(np.argmax(acc > 0.15)) if (acc > 0.15).any() else len(acc) for acc in result.bn_acc[small:]]
    return text + (
        f" Here, at init std {result.scales[small]:.2g} and below, the BN networks' eval accuracy stayed at or "
        f"below 15% for the first {min(stuck)} to {max(stuck)} epochs."
    )


def grid_caption(spec: InitSweepSpec) -> str:
    n_train = snippets.split_sizes(spec)[1]
    return f"Accuracy on the {n_train:,} training samples in eval mode (running statistics), as the book measures it."


def panels(part: Part, r: InitSweepResult, final: bool, font: int) -> list[Panel]:
    out = [Text("Some networks diverged (loss NaN/inf); their curves stop where they diverged.", "warning")]
    return out[: any(d is not None for d in r.diverged_at)] + [
        Chart("sweep-grid", init_sweep_grid(r, font), grid_caption(r.spec)),
        Text(running_init_note(r), "expander", "Running stats start at 0 (the book) or at var 1 (PyTorch)?"),
    ]
