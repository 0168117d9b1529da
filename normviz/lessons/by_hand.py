"""What BN by hand says and draws. Its page is an editor of one BN step (pages/by_hand.py); `panels` draws the
same step as one table, for the offline report."""

from __future__ import annotations

import plotly.graph_objects as go

from normviz.experiments.by_hand import ByHandResult
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
