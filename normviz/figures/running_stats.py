"""Figures of the Running statistics view: trajectories (A), estimate errors (B), eval accuracy (C), PreciseBN.

Every momentum has one colour in all charts of a run (`momentum_colors`: by rank of its PyTorch-convention
value) and its label names the convention it was entered in. `shown` lists the row indices to draw (a display
choice only).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normviz.figures.memo import of_finished_results
from normviz.figures.style import REFERENCE_COLOR, momentum_colors, style

POPULATION_NAMES = {"precise": "population (a) PreciseBN", "eval": "population (b) eval-mode"}
BATCH_DOT = dict(color="rgba(90,90,90,0.35)", size=3)
PRECISE_COLOR = "#2ca02c"  # population (a) and the PreciseBN recalibration
POPULATION_LINES = {
    "precise": dict(color=PRECISE_COLOR, dash="dash", width=2.5),
    "eval": dict(color="#8c564b", dash="dot", width=2.5),
}
TRAIN_MODE_LINE = dict(color=REFERENCE_COLOR, dash="dash", width=2.5)


def _rows(result, shown) -> list[int]:
    """Rows to draw, largest momentum first so the noisy lines lie under the smooth ones; the CMA last."""
    rows = range(len(result.labels)) if shown is None else [i for i in shown if i < len(result.labels)]
    return sorted(rows, key=lambda i: 1.0 if result.row_momenta[i] is None else -result.row_momenta[i])


def _log_var_axis(*arrays) -> bool:
    """A log axis for variances when they span more than a factor of 20 (e.g. running var starting at 1)."""
    values = np.concatenate([np.ravel(a) for a in arrays])
    values = values[np.isfinite(values) & (values > 0)]
    return len(values) > 0 and values.max() / values.min() > 20


@of_finished_results
def trajectories(result, layer: int, channel: int, shown=None, font_size: int = 14) -> go.Figure:
    """Chart A: running mean and var of one channel for each momentum, batch statistics as faint dots,
    the two population definitions as lines."""
    fig = make_subplots(
        2,
        1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("running mean", f"running var ({result.spec.var_estimator} estimator)"),
    )
    steps, pop_steps = result.trace_steps, result.pop_steps
    colors = momentum_colors(result.row_momenta)
    for r, (running, batch, pop) in enumerate(
        (
            (result.running_mean, result.batch_mean, result.pop_mean),
            (result.running_var, result.batch_var, result.pop_var),
        ),
        1,
    ):
        fig.add_scatter(
            x=steps[1:],
            y=batch[1:, layer, channel],
            mode="markers",
            marker=BATCH_DOT,
            name="batch statistic (each step)",
            legendgroup="batch",
            showlegend=r == 1,
            row=r,
            col=1,
        )
        for i in _rows(result, shown):
            fig.add_scatter(
                x=steps,
                y=running[:, layer, i, channel],
                mode="lines",
                name=result.labels[i],
                line=dict(color=colors[i], width=2),
                legendgroup=str(i),
                showlegend=r == 1,
                row=r,
                col=1,
            )
        for key, line in POPULATION_LINES.items():
            fig.add_scatter(
                x=pop_steps,
                y=pop[key][:, layer, channel],
                mode="lines",
                name=POPULATION_NAMES[key],
                line=line,
                legendgroup=key,
                showlegend=r == 1,
                row=r,
                col=1,
            )
    if _log_var_axis(result.running_var[:, layer, _rows(result, shown), channel], result.pop_var["precise"]):
        fig.update_yaxes(type="log", dtick=1, row=2, col=1)
    fig.update_yaxes(title_text="mean", row=1, col=1)
    fig.update_yaxes(title_text="variance", row=2, col=1)
    fig.update_xaxes(title_text="training step", row=2, col=1)
    fig.update_xaxes(range=[0, result.spec.steps])  # the run's length from its first live frame: no jumping axis
    title = f"A. Layer {layer + 1}, channel {channel + 1}: running estimates vs population"
    return style(fig, title, font_size, height=620)


@of_finished_results
def errors(result, population: str = "precise", shown=None, font_size: int = 14) -> go.Figure:
    """Chart B: the channel-averaged error of each momentum's estimate over steps, log scale, with each
    momentum's effective window 1/m marked."""
    fig = make_subplots(
        1,
        2,
        horizontal_spacing=0.08,
        subplot_titles=("mean: |running_mean − pop_mean| / √pop_var", "var: |running_var / pop_var − 1|"),
    )
    err_mean, err_var = result.err_mean[population].mean(1), result.err_var[population].mean(1)  # (T, R)
    rows, colors = _rows(result, shown), momentum_colors(result.row_momenta)
    for c, err in enumerate((err_mean, err_var), 1):
        for i in rows:
            fig.add_scatter(
                x=result.pop_steps,
                y=np.maximum(err[:, i], 1e-6),
                mode="lines+markers",
                marker_size=4,
                name=result.labels[i],
                line_color=colors[i],
                legendgroup=str(i),
                showlegend=c == 1,
                row=1,
                col=c,
            )
    for i in rows:  # the effective window: the start-up error has decayed by e after about 1/m steps
        m = result.row_momenta[i]
        if m is not None and 1 / m <= result.spec.steps:
            line = dict(color=colors[i], dash="dot", width=1.5)
            # a label only where it has room: windows of a few steps crowd the left edge
            text = (
                dict(
                    annotation_position="top right",
                    annotation=dict(text=f"1/m={1 / m:.0f}", textangle=-90, font_color=colors[i]),
                )
                if 1 / m >= 0.04 * result.spec.steps
                else {}
            )
            fig.add_vline(x=1 / m, line=line, row=1, col=1, **text)
            fig.add_vline(x=1 / m, line=line, row=1, col=2)
    fig.update_yaxes(type="log", dtick=1, title_text="error (log scale)", col=1)
    fig.update_yaxes(type="log", dtick=1, col=2)
    fig.update_xaxes(title_text="training step", range=[0, result.spec.steps])
    title = f"B. Error of the running estimates, averaged over all BN channels — against {POPULATION_NAMES[population]}"
    return style(fig, title, font_size, height=430)


@of_finished_results
def accuracy(result, shown=None, font_size: int = 14) -> go.Figure:
    """Chart C: test accuracy in eval mode with each momentum's running stats, and in train mode."""
    fig, colors = go.Figure(), momentum_colors(result.row_momenta)
    for i in _rows(result, shown):
        fig.add_scatter(
            x=result.pop_steps,
            y=result.eval_acc[:, i],
            mode="lines+markers",
            marker_size=4,
            name=f"eval mode: {result.labels[i]}",
            line_color=colors[i],
        )
    fig.add_scatter(
        x=result.pop_steps, y=result.train_acc, mode="lines", name="train mode (batch statistics)", line=TRAIN_MODE_LINE
    )
    fig.update_yaxes(title_text="test accuracy", tickformat=".0%", range=[0, 1.02])
    fig.update_xaxes(title_text="training step", range=[0, result.spec.steps])
    return style(
        fig, "C. Test accuracy: eval mode with each momentum's running stats vs train mode", font_size, height=400
    )


@of_finished_results
def precise_bn(result, shown=None, font_size: int = 14) -> go.Figure:
    """PreciseBN after training: eval accuracy with each momentum's running stats (before) and with the
    recomputed ones (after), against the final train-mode accuracy."""
    p = result.precise
    rows = _rows(result, shown)
    names = [result.labels[i] for i in rows] + [f"after PreciseBN (N={p['batches']})"]
    values = [p["before"][i] for i in rows] + [p["after"]]
    colors = [momentum_colors(result.row_momenta)[i] for i in rows] + [PRECISE_COLOR]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            marker_color=colors,
            showlegend=False,
            text=[f"{v:.1%}" for v in values],
            textposition="auto",
        )
    )
    fig.add_vline(
        x=float(result.train_acc[-1]),
        line=TRAIN_MODE_LINE,
        annotation=dict(text="train mode"),
        annotation_position="top left",
    )
    fig.update_xaxes(title_text="test accuracy (eval mode)", tickformat=".0%", range=[0, 1.02])
    fig.update_yaxes(autorange="reversed")
    return style(
        fig,
        "PreciseBN: eval accuracy before (each momentum) and after recalibration",
        font_size,
        height=120 + 45 * len(names),
    )
