"""What BN by hand says and draws. Its page is an editor of one BN step (pages/by_hand.py); `panels` draws the
same step as one table, for the offline report."""

from __future__ import annotations

import plotly.graph_objects as go

from normviz.config import Preset
from normviz.experiments.by_hand import ByHandResult, ByHandSpec, _format_number
from normviz.figures.style import style
from normviz.panels import Chart, Panel
from normviz.views import Part


def panels(part: Part, r: ByHandResult, final: bool, font: int) -> list[Panel]:
    """The batch, its statistics, x̂, y and the running statistics after, with how far torch is from them."""
    h, (b, c) = r.hand, r.shape
    rows = (
        [(f"x, sample {i + 1}", r.inputs["x"][i]) for i in range(b)]
        + [("μ_B", h["mean"]), ("σ²_B", h["var"])]
        + [(f"x̂, sample {i + 1}", h["x_hat"][i]) for i in range(b)]
        + [(f"y = γx̂+β, sample {i + 1}", h["y"][i]) for i in range(b)]
        + [("running mean after", h["running_mean"]), ("running var after", h["running_var"])]
    )
    cells = [[label for label, _ in rows]] + [[f"{v[j]:.6g}" for _, v in rows] for j in range(c)]
    fig = go.Figure(
        go.Table(
            header=dict(values=["", *(f"feature {j + 1}" for j in range(c))]),
            cells=dict(values=cells, height=font + 12),
            columnwidth=[2] + [1] * c,
        )
    )
    note = (
        "torch.nn.BatchNorm1d refused this batch: " + r.torch_error
        if r.torch_error
        else f"max |by hand − nn.BatchNorm1d| (float64): {max(r.diff(n) for n in ('y', 'running_mean')):.1e}"
    )
    fig = style(fig, f"One training step by hand (momentum {r.momentum:g}, PyTorch convention). {note}", font)
    margins = fig.layout.margin.t + fig.layout.margin.b  # the title's lines, however many
    return [Chart("by-hand-step", fig.update_layout(height=margins + (font + 12) * (len(rows) + 1) + 30))]


# --- presets and the PyTorch snippet ------------------------------------------------------------------------

PRESETS = {
    "a constant feature": Preset(
        {"x": "[[1,2,3],[3,-1,3],[5,0,3],[7,3,3]]", "dy": "[[1,0,1],[0,2,-1],[1,0,2],[2,1,0]]"},
        "Feature 3 is 3 in every sample: σ² = 0, so x̂ = 0/√ε = 0 and y = β. Without ε it would be 0/0. "
        "ε also scales this feature's gradient: dL/dx = γ(dy − mean dy)/√ε, about 316 × the upstream "
        "differences with ε = 1e-5 (see step 6).",
    ),
    "B = 2 gives ±1": Preset(
        {"x": "[[1,10,-3],[3,4,5]]"},
        "With two samples, x̂ is +1 for the larger value and −1 for the smaller one in every feature, "
        "whatever the values were (up to ε): σ_B is half the gap. BatchNorm on a batch of two keeps only "
        "the order of the two samples.",
    ),
    "B = 1: torch refuses": Preset(
        {"x": "[[1,2,3]]"},
        "torch.nn.BatchNorm1d refuses to train on one sample. By hand, σ² = 0, x̂ = 0 and y = β for any "
        "input, and the unbiased running variance would divide by B − 1 = 0.",
    ),
    "huge ε": Preset(
        {"eps": 100.0},
        "With ε = 100 ≫ σ², x̂ = (x − μ)/√(σ²+ε) is about (x − μ)/10: the features are centred but no "
        "longer scaled to standard deviation 1 (step 2's table).",
    ),
    "Keras defaults (momentum 0.99, biased var)": Preset(
        {"convention": "keras", "momentum": 0.99, "eps": 1e-3, "var_estimator": "biased"},
        "Keras' momentum 0.99 is the weight of the old running value: PyTorch's momentum 0.01. The running "
        "statistics move 1% of the way to the batch's, and the running var folds in the biased σ²_B. "
        "torch.nn.BatchNorm1d(momentum=0.01, eps=1e-3) gives the same y; only the running var differs.",
    ),
}


def pytorch_snippet(spec: ByHandSpec) -> str:
    """The step by hand in torch, next to nn.BatchNorm1d: max differences and the running statistics."""
    a, m = spec.arrays(), spec.momentum_pytorch
    b, c = a["x"].shape
    row = lambda v: "[" + ", ".join(_format_number(t) for t in v) + "]"
    vec = lambda name: f"T({row(a[name])})"
    mat = lambda name: "T([" + ", ".join(row(r) for r in a[name]) + "])"
    factor = f" * {b} / {b - 1}" if spec.var_estimator == "unbiased" else ""
    conv = f"  # = 1 - Keras momentum {spec.momentum:g}" if spec.convention == "keras" else ""
    return (
        "\n".join(
            [
                "import torch",
                "",
                "T = lambda v: torch.tensor(v, dtype=torch.float64)  # float64, like the page's numpy",
                f"x = {mat('x')}  # (B, C) = ({b}, {c})",
                f"gamma, beta = {vec('gamma')}, {vec('beta')}",
                f"rm0, rv0 = {vec('running_mean')}, {vec('running_var')}",
                f"eps, m = {spec.eps:.12g}, {m:.12g}  # m: PyTorch's momentum, the weight of the new batch{conv}",
                f"dy = {mat('dy')}  # upstream gradient dL/dy",
                "",
                "mu, var = x.mean(0), x.var(0, correction=0)  # training normalises with the biased variance",
                "std = torch.sqrt(var + eps)",
                "x_hat = (x - mu) / std",
                "y_hand = gamma * x_hat + beta",
                f"rv_hand = (1 - m) * rv0 + m * var{factor}  # {spec.var_estimator} estimator in the running var",
                f"dx_hand = gamma / ({b} * std) * ({b} * dy - dy.sum(0) - x_hat * (dy * x_hat).sum(0))  # closed form",
                f"bn = torch.nn.BatchNorm1d({c}, eps=eps, momentum=m, dtype=torch.float64)",
                "with torch.no_grad():",
                "    bn.weight.copy_(gamma), bn.bias.copy_(beta), bn.running_mean.copy_(rm0), bn.running_var.copy_(rv0)",  # noqa: E501
                "x.requires_grad_(True)",
                "try:",
                "    y = bn(x)",
                "except ValueError as e:  # B = 1: one value per channel",
                "    print('torch refuses:', e)",
                "else:",
                "    y.backward(dy)  # autograd",
                "    print('max |y_hand - y_torch|   =', (y_hand - y).abs().max().item())",
                "    print('max |dx_hand - autograd| =', (dx_hand - x.grad).abs().max().item())",
                "    print('running mean:', bn.running_mean.tolist(), 'by hand:', ((1 - m) * rm0 + m * mu).tolist())",
                "    print('running var (torch, unbiased):', bn.running_var.tolist())",
                f"    print('running var ({spec.var_estimator}, by hand):', rv_hand.tolist())",
            ]
        )
        + "\n"
    )
