"""What the Init-scale sweep page says and draws: the set-up in one line, the grid with its caption, why
PyTorch's running-var start of 1 hides early learning, its preset and its PyTorch snippet."""

from __future__ import annotations

import numpy as np

from normviz import snippets
from normviz.config import Preset
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


# --- presets and the PyTorch snippet ------------------------------------------------------------------------

PRESETS = {
    "the DLfS 16-scale grid": Preset(
        {},
        "The book's figure: one panel per weight-init std, from 1 down to 1e-4. With BN (solid) every scale "
        "learns, fastest from about 0.3 down to 1e-3, more slowly at the largest scales and at the smallest. "
        "Without BN (dashed) only two scales learn, 0.29 and 0.16: larger ones diverge (no curve), smaller ones "
        "stay at or near chance (one answer for every input: about 12% of the training digits). At the smallest "
        "scales "
        "the first layer's input variance (about 5e-8 at std 1e-4) is below BN's eps (1e-6, the book's), so BN "
        "no longer scales it up to 1 and learning is slower.",
    ),
}


def pytorch_snippet(spec: InitSweepSpec) -> str:
    """A short script: the sweep with torch.nn, final train accuracy (eval mode) per init std, BN and not."""
    data_import, data = snippets.data_lines(spec)
    act = snippets.activation_layer(spec.activation)
    zeros = (
        "            m.running_var.zero_()  # the book starts running var at 0 (PyTorch: 1)"
        if spec.running_init == "zeros"
        else None
    )
    batches = snippets.split_sizes(spec)[1] // spec.batch_size
    code = [
        "import torch",
        "from torch import nn",
        data_import,
        "",
        *data,
        "",
        "def mlp(std, bn):",
        f"    torch.manual_seed({spec.seed})  # the same weights up to scale for every network",
        f"    norm = (lambda: nn.BatchNorm1d({spec.width}, eps={spec.eps:g})) if bn else nn.Identity",
        f"    blocks = [nn.Sequential(nn.Linear(n, {spec.width}), norm(), {act}) "
        f"for n in [x.shape[1]] + [{spec.width}] * {spec.depth - 1}]",
        f"    net = nn.Sequential(*blocks, nn.Linear({spec.width}, int(y.max()) + 1))",
        "    for m in net.modules():",
        "        if isinstance(m, nn.Linear):",
        "            nn.init.normal_(m.weight, std=std)",
        "            nn.init.zeros_(m.bias)",
        *(["        if isinstance(m, nn.BatchNorm1d):", zeros] if zeros else []),
        "    return net",
        "",
        "def train(net):  # returns the train accuracy in eval mode, as the book measures it",
        f"    opt = torch.optim.SGD(net.parameters(), lr={spec.lr:g})",
        f"    for epoch in range({spec.epochs}):",
        f"        for idx in torch.randperm(len(x_train)).split({spec.batch_size})[:{batches}]:  # full batches",
        "            loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])",
        "            opt.zero_grad()",
        "            loss.backward()",
        "            opt.step()",
        "    acc = (net.eval()(x_train).argmax(1) == y_train).float().mean().item()",
        "    return acc if loss.isfinite() else float('nan')  # nan: the training diverged",
        "",
        "print('init std    BN  no BN   (train accuracy in eval mode)')",
        f"for std in {snippets.logspace_expr(spec.scale_max, spec.scale_min, spec.scales)}:",
        "    print(f'{std:8.2g}  {train(mlp(std, True)):4.0%}  {train(mlp(std, False)):4.0%}')",
    ]
    return "\n".join(code) + "\n"
