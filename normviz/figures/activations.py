"""Figures of the Activations view: per-layer histograms, layer statistics, curves, the init grid."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normviz.figures.memo import of_finished_results
from normviz.figures.style import norm_color, style
from normviz.probes import frame_indices

QUANTITY_TITLES = {
    "linear": "Linear output W·x + b (BN's input)",
    "norm": "after BatchNorm (the no-BN network has none: same as its input)",
    "act": "after the activation",
    "grad": "log10 |dL/dW| of each layer's weights",
}
STAT_TITLES = {
    "mean": "mean activation",
    "std": "std of activations",
    "saturated": "share saturated",
    "dead": "share of dead ReLU units",
}


def _centers(edges: np.ndarray) -> np.ndarray:
    return (edges[:-1] + edges[1:]) / 2


@of_finished_results
def layer_histograms(result, quantity: str, font_size: int = 14, animate: bool = False) -> go.Figure:
    """Rows: the two networks; columns: hidden layers; bars: share of probe values per bin.

    Shows the latest snapshot; with `animate`, a step slider and a play button run through all of them
    in the browser, with no round trip to the server.
    """
    hists = result.snapshots["grad_hist" if quantity == "grad" else f"hist_{quantity}"]  # (T, K, L, nb)
    _, n_models, n_layers, _ = hists.shape
    fig = make_subplots(
        n_models,
        n_layers,
        shared_yaxes=True,
        horizontal_spacing=0.02,
        vertical_spacing=0.12,
        column_titles=[f"layer {i + 1}" for i in range(n_layers)],
        row_titles=[f"<b>{m}</b>" for m in result.models],
    )
    for m, model in enumerate(result.models):
        for layer in range(n_layers):
            edges = result.edges["grad"] if quantity == "grad" else result.edges[quantity][layer]
            fig.add_bar(
                x=_centers(edges),
                y=hists[-1, m, layer],
                width=np.diff(edges),
                marker_color=norm_color(model),
                name=model,
                showlegend=False,
                row=m + 1,
                col=layer + 1,
                hovertemplate="%{x:.3g}: %{y:.1%}<extra>" + model + "</extra>",
            )
    fig.update_yaxes(tickformat=".0%", range=[0, min(1.0, 1.1 * float(np.nanmax(hists, initial=0.01)))])
    fig.update_layout(bargap=0)
    steps = [int(s) for s in result.probe_steps]
    if animate and len(steps) > 1:
        shown = frame_indices(len(steps))  # a long run's frames thinned evenly: the figure's size stays bounded
        fig.frames = [
            go.Frame(
                name=str(steps[t]),
                data=[go.Bar(y=hists[t, m, layer]) for m in range(n_models) for layer in range(n_layers)],
            )
            for t in shown
        ]
        steps = [steps[t] for t in shown]
        frame_args = dict(mode="immediate", frame=dict(duration=150, redraw=True), transition=dict(duration=0))
        fig.update_layout(
            updatemenus=[
                dict(
                    type="buttons",
                    x=0.1,
                    y=0,
                    xanchor="right",
                    yanchor="top",
                    direction="left",
                    pad=dict(t=70, r=10),
                    buttons=[
                        dict(label="▶ play", method="animate", args=[None, frame_args]),
                        dict(label="❚❚", method="animate", args=[[None], frame_args]),
                    ],
                )
            ],
            sliders=[
                dict(
                    active=len(steps) - 1,
                    x=0.1,
                    len=0.9,
                    y=0,
                    yanchor="top",
                    pad=dict(t=45, b=10),
                    currentvalue=dict(prefix="step "),
                    steps=[dict(label=str(s), method="animate", args=[[str(s)], frame_args]) for s in steps],
                )
            ],
        )
        return style(fig, QUANTITY_TITLES[quantity], font_size, height=520)
    return style(fig, f"{QUANTITY_TITLES[quantity]} — step {steps[-1]}", font_size, height=430)


@of_finished_results
def layer_stats(result, font_size: int = 14) -> go.Figure:
    """Mean, std, saturation and dead share per layer over training: one line per layer."""
    stats = [s for s in STAT_TITLES if s in ("mean", "std") or np.nanmax(result.snapshots[s], initial=0) > 0]
    fig = make_subplots(
        len(stats),
        len(result.models),
        shared_xaxes=True,
        vertical_spacing=0.06,
        column_titles=list(result.models),
        row_titles=[STAT_TITLES[s] for s in stats],
    )
    n_layers = result.snapshots["mean"].shape[2]
    shades = [f"hsl({int(220 - 200 * i / max(n_layers - 1, 1))},70%,45%)" for i in range(n_layers)]
    for r, stat in enumerate(stats):
        for m in range(len(result.models)):
            for layer in range(n_layers):
                fig.add_scatter(
                    x=result.probe_steps,
                    y=result.snapshots[stat][:, m, layer],
                    mode="lines",
                    line_color=shades[layer],
                    name=f"layer {layer + 1}",
                    legendgroup=f"layer {layer + 1}",
                    showlegend=r == 0 and m == 0,
                    row=r + 1,
                    col=m + 1,
                )
    fig.update_xaxes(title_text="step", row=len(stats))
    fig.update_xaxes(range=[0, result.spec.steps])  # the run's length from its first live frame: no jumping axis
    for r, stat in enumerate(stats):
        if stat == "std":  # a collapse by orders of magnitude only shows on a log axis
            std = result.snapshots["std"][np.isfinite(result.snapshots["std"]) & (result.snapshots["std"] > 0)]
            decades = np.log10(std.max() / std.min()) if std.size else 0
            # at most about four labels in a row's height (a phone's tick labels would overlap)
            fig.update_yaxes(type="log", exponentformat="power", dtick=max(1, math.ceil(decades / 4)), row=r + 1)
        elif stat in ("saturated", "dead"):
            fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%", row=r + 1)
    return style(
        fig,
        "Per-layer statistics after the activation (probe batch, train mode)",
        font_size,
        height=170 * len(stats) + 90,
    )


@of_finished_results
def training_curves(result, font_size: int = 14) -> go.Figure:
    """Loss per step, and accuracy (eval mode on train and test, train mode on each batch)."""
    fig = make_subplots(1, 2, subplot_titles=("training loss (per batch)", "accuracy"))
    steps = np.arange(1, len(result.loss) + 1)
    for m, model in enumerate(result.models):
        color = norm_color(model)
        fig.add_scatter(
            x=steps, y=result.loss[:, m], mode="lines", line_color=color, name=f"{model}: loss", row=1, col=1
        )
        for key, dash, label in (("test_acc", "solid", "test (eval mode)"), ("train_acc", "dot", "train (eval mode)")):
            fig.add_scatter(
                x=result.probe_steps,
                y=result.snapshots[key][:, m],
                mode="lines+markers",
                line=dict(color=color, dash=dash),
                marker_size=4,
                name=f"{model}: {label}",
                row=1,
                col=2,
            )
        fig.add_scatter(
            x=steps,
            y=_smooth(result.batch_acc[:, m]),
            mode="lines",
            opacity=0.5,
            line=dict(color=color, dash="dash", width=1),
            name=f"{model}: batch (train mode)",
            row=1,
            col=2,
        )
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    fig.update_xaxes(title_text="step", range=[0, result.spec.steps])  # the run's length from its first frame
    return style(fig, None, font_size, height=380)


def _smooth(y: np.ndarray, window: int = 10) -> np.ndarray:
    if len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.concatenate([y[: window - 1], np.convolve(y, kernel, mode="valid")])


@of_finished_results
def init_sweep_grid(result, font_size: int = 14) -> go.Figure:
    """The DLfS figure: one panel per init std, train accuracy per epoch, BN solid, no BN dashed."""
    n = len(result.scales)
    cols = 4
    rows = -(-n // cols)
    fig = make_subplots(
        rows,
        cols,
        shared_xaxes=True,
        shared_yaxes=True,
        vertical_spacing=0.07,
        horizontal_spacing=0.03,
        subplot_titles=[f"std = {s:.2g}" for s in result.scales],
    )
    epochs = np.arange(1, result.bn_acc.shape[1] + 1)
    for i in range(n):
        r, c = i // cols + 1, i % cols + 1
        for acc, model, dash in ((result.bn_acc, "BN", "solid"), (result.plain_acc, "no BN", "dash")):
            fig.add_scatter(
                x=epochs,
                y=acc[i],
                mode="lines",
                line=dict(color=norm_color(model), dash=dash),
                name=model,
                legendgroup=model,
                showlegend=i == 0,
                row=r,
                col=c,
            )
    fig.update_yaxes(range=[0, 1.05], tickvals=[0, 0.5, 1])
    fig.update_xaxes(title_text="epoch", row=rows)
    return style(fig, "Train accuracy (eval mode) per epoch for 16 init scales", font_size, height=200 * rows + 90)
