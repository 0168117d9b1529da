"""Figures of the Why BN helps view: one builder per experiment (plus the noisy view's layer drift)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normviz.experiments import why_adabn, why_lr_range, why_noisy
from normviz.figures.memo import of_finished_results
from normviz.figures.style import REFERENCE_COLOR, norm_color, style

MODEL_COLORS = {
    "noisy BN": "#ff7f0e",
    "BN + weight decay": "#2ca02c",
    "BN, rate matched": "#9467bd",
}


def color(model: str) -> str:
    return MODEL_COLORS.get(model) or norm_color(model)


def _band(fig, x, lo, hi, model, row, col, legend=False, name=None):
    """A filled band from lo to hi in the model's colour."""
    fig.add_scatter(x=x, y=lo, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip", row=row, col=col)
    fig.add_scatter(
        x=x,
        y=hi,
        mode="lines",
        line=dict(width=0.5, color=color(model)),
        fill="tonexty",
        fillcolor=color(model),
        opacity=0.35,
        name=name or model,
        legendgroup=model,
        showlegend=legend,
        row=row,
        col=col,
    )


@of_finished_results
def lr_range(result: why_lr_range.LrRangeResult, font_size: int = 14) -> go.Figure:
    """Final test accuracy and step of divergence against the learning rate, BN and no BN."""
    fig = make_subplots(
        1,
        2,
        subplot_titles=("final test accuracy (eval mode)", "step at which the loss diverged"),
        horizontal_spacing=0.1,
    )
    for model in why_lr_range.MODELS:
        fig.add_scatter(
            x=result.lrs,
            y=result.acc(model),
            mode="lines+markers",
            name=model,
            legendgroup=model,
            line=dict(color=color(model)),
            hovertemplate="lr %{x:.3g}: %{y:.1%}<extra>" + model + "</extra>",
            row=1,
            col=1,
        )
        steps = np.array([np.nan if d is None else d for d in result.diverged(model)], float)
        fig.add_scatter(
            x=result.lrs,
            y=steps,
            mode="markers",
            name=model,
            legendgroup=model,
            showlegend=False,
            marker=dict(color=color(model), size=11, symbol="x" if model == "no BN" else "circle"),
            hovertemplate="lr %{x:.3g}: diverged at step %{y}<extra>" + model + "</extra>",
            row=1,
            col=2,
        )
    fig.add_hline(
        y=why_lr_range.TRAINS_AT,
        line=dict(dash="dot", color=REFERENCE_COLOR),
        annotation_text=f"{why_lr_range.TRAINS_AT:.0%}: trains",
        row=1,
        col=1,
    )
    fig.update_xaxes(type="log", title_text="learning rate")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=1)
    fig.update_yaxes(range=[0, result.spec.steps * 1.05], title_text="step (no marker: did not diverge)", row=1, col=2)
    return style(fig, None, font_size, height=420)


@of_finished_results
def landscape(result, font_size: int = 14) -> go.Figure:
    """Loss band, gradient-change band and effective β-smoothness over training, BN and no BN."""
    fig = make_subplots(
        1,
        3,
        subplot_titles=("loss at θ − ηg (min to max over η)", "‖∇L(θ − ηg) − ∇L(θ)‖", "effective β-smoothness"),
        horizontal_spacing=0.07,
    )
    x = result.check_steps
    lo, hi = result.loss_band()
    beta = result.smoothness()
    for k, model in enumerate(result.models):
        _band(fig, x, lo[:, k], hi[:, k], model, 1, 1, legend=True)
        _band(fig, x, result.grad_change[:, k].min(-1), result.grad_change[:, k].max(-1), model, 1, 2)
        fig.add_scatter(
            x=x,
            y=beta[:, k],
            mode="lines+markers",
            line=dict(color=color(model)),
            name=model,
            legendgroup=model,
            showlegend=False,
            row=1,
            col=3,
        )
    fig.update_xaxes(title_text="training step")
    return style(fig, None, font_size, height=420)


@of_finished_results
def noisy_distributions(result, layer: int, font_size: int = 14) -> go.Figure:
    """One column per network: quantiles of a layer's output (what the next layer sees) on each training batch."""
    fig = make_subplots(1, 3, subplot_titles=result.models, shared_yaxes=True, horizontal_spacing=0.03)
    q = result.quantiles[:, :, layer]  # (T, K, Q)
    x = result.probe_steps
    for k, model in enumerate(result.models):
        _band(fig, x, q[:, k, 0], q[:, k, 4], model, 1, k + 1, name="5-95%")
        _band(fig, x, q[:, k, 1], q[:, k, 3], model, 1, k + 1, name="25-75%")
        fig.add_scatter(
            x=x,
            y=q[:, k, 2],
            mode="lines",
            line=dict(color="black", width=1),
            name="median",
            showlegend=False,
            row=1,
            col=k + 1,
        )
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text=f"output of hidden layer {layer + 1}", row=1, col=1)
    return style(fig, None, font_size, height=380)


@of_finished_results
def noisy_summary(result, font_size: int = 14) -> go.Figure:
    """Left: how far each layer's output distribution moves per step; right: training accuracy on each batch."""
    fig = make_subplots(
        1,
        2,
        subplot_titles=("distribution shift per step (mean over steps)", "training accuracy on each batch"),
        horizontal_spacing=0.1,
    )
    shift = result.mean_shift()  # (K, L)
    layers = [f"layer {i + 1}" for i in range(shift.shape[1])]
    acc = result.batch_acc
    kernel = np.ones(why_noisy.SMOOTH) / why_noisy.SMOOTH
    for k, model in enumerate(result.models):
        fig.add_bar(x=layers, y=shift[k], name=model, legendgroup=model, marker_color=color(model), row=1, col=1)
        smooth = np.convolve(acc[:, k], kernel, "valid") if len(acc) >= why_noisy.SMOOTH else acc[:, k]
        fig.add_scatter(
            x=np.arange(len(acc) - len(smooth) + 1, len(acc) + 1),
            y=smooth,
            mode="lines",
            line=dict(color=color(model)),
            name=model,
            legendgroup=model,
            showlegend=False,
            row=1,
            col=2,
        )
    fig.update_yaxes(title_text="|Δ mean| + |Δ std|", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], row=1, col=2)
    fig.update_xaxes(title_text=f"training step (mean of the last {why_noisy.SMOOTH})", row=1, col=2)
    return style(fig, None, font_size, height=380)


@of_finished_results
def scale(result, font_size: int = 14) -> go.Figure:
    """‖w‖ and lr/‖w‖² of every hidden layer over training, and the training loss, for the three BN networks."""
    fig = make_subplots(
        1,
        3,
        subplot_titles=("‖w‖ of each hidden layer", "effective rate lr/‖w‖²", "training loss"),
        horizontal_spacing=0.07,
    )
    eff = result.effective_lr()
    dash = {"BN": "solid", "BN + weight decay": "solid", "BN, rate matched": "dot"}
    for k, model in enumerate(result.models):
        for layer in range(result.weight_norm.shape[2]):
            common = dict(
                mode="lines",
                line=dict(color=color(model), width=1.5, dash=dash[model]),
                legendgroup=model,
                name=model,
                hovertemplate=f"layer {layer + 1}, step %{{x}}: %{{y:.3g}}<extra>{model}</extra>",
            )
            fig.add_scatter(y=result.weight_norm[:, k, layer], showlegend=layer == 0, row=1, col=1, **common)
            fig.add_scatter(x=np.arange(1, len(eff) + 1), y=eff[:, k, layer], showlegend=False, row=1, col=2, **common)
        fig.add_scatter(
            x=np.arange(1, len(result.loss) + 1),
            y=result.loss[:, k],
            mode="lines",
            line=dict(color=color(model), dash=dash[model]),
            name=model,
            legendgroup=model,
            showlegend=False,
            row=1,
            col=3,
        )
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text="training step")
    return style(fig, None, font_size, height=420)


@of_finished_results
def adabn(result: why_adabn.AdaBNResult, font_size: int = 14) -> go.Figure:
    """Above: accuracy under the shift by how BN gets its statistics; below: AdaBN's accuracy against its samples
    (one above the other: side by side, a phone had no room for the bars' names)."""
    fig = make_subplots(
        2,
        1,
        subplot_titles=(
            f"test accuracy, shift: {result.spec.shift}",
            "AdaBN: accuracy against unlabelled shifted images",
        ),
        vertical_spacing=0.2,
    )
    n = result.spec.adapt_samples
    bars = {  # two short lines each: a phone keeps room for the bars
        "clean,<br>eval mode": result.clean_acc[0],
        "shifted, eval mode<br>(training statistics)": result.shifted_acc[0],
        f"shifted, AdaBN<br>on {n} images": result.adabn_at(min(n, result.pool_size)),
        f"shifted, AdaBN<br>on all {result.pool_size}": result.pool_acc,
        f"shifted, each test batch's<br>statistics ({result.spec.test_batch})": result.batch_stats_acc,
    }
    fig.add_bar(
        y=list(bars),
        x=list(bars.values()),
        orientation="h",
        marker_color=color("BN"),
        name="BN",
        legendgroup="BN",
        texttemplate="%{x:.1%}",
        row=1,
        col=1,
    )
    fig.add_bar(
        y=list(bars)[:2],
        x=[result.clean_acc[1], result.shifted_acc[1]],
        orientation="h",
        marker_color=color("no BN"),
        name="no BN",
        legendgroup="no BN",
        texttemplate="%{x:.1%}",
        row=1,
        col=1,
    )
    mean = result.adabn_acc.mean(1)
    _band(fig, result.samples, result.adabn_acc.min(1), result.adabn_acc.max(1), "BN", 2, 1, name="AdaBN, draws")
    fig.add_scatter(
        x=result.samples,
        y=mean,
        mode="lines+markers",
        line=dict(color=color("BN")),
        name="AdaBN, mean",
        legendgroup="BN",
        showlegend=False,
        row=2,
        col=1,
    )
    for y, text in ((result.shifted_acc[0], "training statistics"), (result.pool_acc, "AdaBN, whole pool")):
        fig.add_hline(y=y, line=dict(dash="dot", color=REFERENCE_COLOR), annotation_text=text, row=2, col=1)
    fig.add_vline(x=min(n, result.pool_size), line=dict(dash="dash", color=REFERENCE_COLOR), row=2, col=1)
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_xaxes(tickformat=".0%", range=[0, 1.05], row=1, col=1)
    fig.update_xaxes(
        type="log", tickformat="~s", title_text="unlabelled shifted images", row=2, col=1
    )  # 1k: fits a phone
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], row=2, col=1)
    return style(fig, None, font_size, height=720)


def default_layer(depth: int) -> int:
    """The hidden layer (0-based) the noisy view shows first: the middle one."""
    return max(1, depth // 2) - 1
