"""Figures of the Train vs inference view; what to notice under them is written in
normviz/lessons/train_vs_inference.py.

Every figure takes a finished part of an InferenceResult or BatchSizeResult and returns a plotly Figure: no
training here.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normviz.experiments.batch_size import BATCH_STAT_NORMS
from normviz.experiments.inference import FINETUNE_CASES, MATE_KINDS
from normviz.figures.memo import of_finished_results
from normviz.figures.style import REFERENCE_COLOR, norm_color, style
from normviz.layers import NORM_LABELS

EVAL_COLOR, TRAIN_COLOR, CRASH_COLOR = REFERENCE_COLOR, norm_color("batch"), "#d62728"
MATE_COLORS = {"eval": EVAL_COLOR, "same class": "#2ca02c", "mixed": "#9467bd", "other class": "#ff7f0e"}
CASE_COLORS = dict(zip(FINETUNE_CASES, ("#d62728", "#2ca02c")))
MARK_COLOR = "rgba(120,120,120,0.5)"


def pct(v: float) -> str:
    """An accuracy as the charts and the notices round it."""
    return "n/a" if not np.isfinite(v) else f"{v:.0%}"


def _batch_axis(fig: go.Figure, sizes, row: int | None = None, col: int | None = None):
    sizes = [int(s) for s in sizes]
    fig.update_xaxes(
        type="log", tickvals=sizes, ticktext=[str(s) for s in sizes], title_text="batch size", row=row, col=col
    )


def nearest(sizes, batch: int) -> int:
    """The measured batch size closest to the slider's (on a log scale)."""
    return int(min(sizes, key=lambda s: abs(np.log2(s) - np.log2(batch))))


def _mark(fig: go.Figure, batch: int, row: int | None = None, col: int | None = None, y=(0, 1)):
    """A vertical line at the batch size the page looks at (the slider)."""
    kw = {} if row is None else dict(row=row, col=col)
    fig.add_scatter(
        x=[batch, batch],
        y=list(y),
        mode="lines",
        line=dict(color=MARK_COLOR, width=6),
        name=f"slider: batch {batch}",
        showlegend=False,
        hoverinfo="skip",
        **kw,
    )


# --- 1. train mode vs eval mode ---------------------------------------------------------------------------
@of_finished_results
def train_vs_eval(result, batch: int, font_size: int = 14) -> go.Figure:
    """Test accuracy against the batch size the test set is fed in, eval vs train mode, MLP and CNN."""
    fig = go.Figure()
    _mark(fig, batch)
    for name, table, dash in (("MLP (BatchNorm1d)", result.mlp, "solid"), ("CNN (BatchNorm2d)", result.cnn, "dot")):
        fig.add_scatter(
            x=table.sizes,
            y=table.eval_acc,
            mode="lines+markers",
            name=f"{name}, eval mode",
            line=dict(color=EVAL_COLOR, dash=dash),
            hovertemplate="batch %{x}: %{y:.1%}",
        )
        fig.add_scatter(
            x=table.sizes,
            y=table.train_acc,
            mode="lines+markers",
            name=f"{name}, train mode",
            line=dict(color=TRAIN_COLOR, dash=dash),
            hovertemplate="batch %{x}: %{y:.1%}",
        )
    refused = [int(s) for s, a in zip(result.mlp.sizes, result.mlp.train_acc) if not np.isfinite(a)]
    if refused:
        fig.add_scatter(
            x=refused,
            y=[0.02] * len(refused),
            mode="markers+text",
            text=["ValueError"] * len(refused),
            textposition="top center",
            marker=dict(symbol="x", size=14, color=CRASH_COLOR),
            name="MLP, train mode: refused",
            hovertemplate="BatchNorm1d refuses batch %{x}<extra></extra>",
        )
    _batch_axis(fig, result.mlp.sizes)
    fig.update_yaxes(title_text="test accuracy", tickformat=".0%", range=[0, 1.02])
    return style(fig, "Test accuracy when the test set is fed in batches of B", font_size, height=430)


# --- 2. batch size 1 ---------------------------------------------------------------------------------------
@of_finished_results
def single_image(result, font_size: int = 14) -> go.Figure:
    """CNN: probability of the true class, eval mode vs the image alone in train mode."""
    ex = result.cnn_examples
    labels = [f"#{i} ({y})" for i, y in enumerate(ex["label"])]
    fig = go.Figure()
    fig.add_bar(x=labels, y=ex["p_eval"], name="eval mode (running statistics)", marker_color=EVAL_COLOR)
    fig.add_bar(
        x=labels, y=ex["p_alone"], name="train mode, alone (the image's own statistics)", marker_color=TRAIN_COLOR
    )
    fig.add_hline(y=0.1, line=dict(color=MARK_COLOR, dash="dash"), annotation_text="chance (1/10)")
    fig.update_xaxes(title_text="test image (true class)")
    fig.update_yaxes(title_text="probability of the true class", tickformat=".0%", range=[0, 1.02])
    fig.update_layout(barmode="group")
    return style(fig, "The small CNN, one 8x8 image at a time", font_size, height=380)


@of_finished_results
def story(result, font_size: int = 14) -> go.Figure:
    """Frame-by-frame deployment: running accuracy over frames and the final scores."""
    s = result.story
    frames = np.arange(1, len(s.eval_correct) + 1)
    fig = make_subplots(  # one above the other: side by side, a phone's bars had no room for their names
        2,
        1,
        row_heights=[0.55, 0.45],
        vertical_spacing=0.24,
        subplot_titles=("running accuracy over the frames", "accuracy after all frames"),
    )
    fig.add_scatter(
        x=frames,
        y=np.cumsum(s.eval_correct) / frames,
        name="CNN with model.eval()",
        line_color=EVAL_COLOR,
        row=1,
        col=1,
    )
    fig.add_scatter(
        x=frames,
        y=np.cumsum(s.forgot_correct) / frames,
        name="CNN, forgot model.eval()",
        line_color=TRAIN_COLOR,
        row=1,
        col=1,
    )
    names = ["MLP<br>.eval()", "MLP<br>forgot", "CNN<br>.eval()", "CNN<br>forgot", "CNN .eval()<br>afterwards"]
    values = [result.mlp.eval_acc[0], 0.0, s.eval_correct.mean(), s.forgot_correct.mean(), s.eval_after_forgot]
    colors = [EVAL_COLOR, CRASH_COLOR, EVAL_COLOR, TRAIN_COLOR, "#7f7f7f"]
    text = [
        pct(values[0]),
        "crash:<br>ValueError" if s.mlp_error else "",
        pct(values[2]),
        pct(values[3]),
        pct(values[4]),
    ]
    fig.add_bar(
        x=names,
        y=values,
        marker_color=colors,
        text=text,
        textposition="outside",
        showlegend=False,
        cliponaxis=False,
        hovertemplate="%{x}: %{y:.1%}<extra></extra>",
        row=2,
        col=1,
    )
    fig.update_xaxes(title_text="frame (test images in order)", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", range=[0, 1.1])
    return style(
        fig, f"Trained at batch {result.spec.train_batch}, deployed one frame at a time", font_size, height=640
    )


# --- 3. batch-mates ----------------------------------------------------------------------------------------
@of_finished_results
def batch_mates(result, batch: int, font_size: int = 14) -> go.Figure:
    """The chosen image and its class probabilities with different batch-mates, train vs eval mode."""
    m = result.mates
    sizes = list(m.sizes)
    batch = 1 if batch == 1 else nearest(sizes, batch)
    fig = make_subplots(
        1,
        2,
        column_widths=[0.2, 0.8],
        horizontal_spacing=0.08,
        subplot_titles=(f"test image #{m.index} (class {m.label})", f"its class probabilities in a batch of {batch}"),
    )
    fig.add_heatmap(
        z=m.pixels[::-1], colorscale="gray_r", zmin=-1, zmax=2, showscale=False, hoverinfo="skip", row=1, col=1
    )
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, scaleanchor="x", row=1, col=1)
    classes = np.arange(len(m.alone))
    fig.add_bar(
        x=classes, y=m.alone, name="eval mode (any batch-mates, or alone)", marker_color=EVAL_COLOR, row=1, col=2
    )
    if batch in sizes:
        i = sizes.index(batch)
        for k, kind in enumerate(MATE_KINDS):
            what = f"class {m.other_class}" if kind == "other class" else kind
            fig.add_bar(
                x=classes,
                y=m.train[i, k],
                name=f"train mode, batch-mates: {what}",
                marker_color=MATE_COLORS[kind],
                row=1,
                col=2,
            )
    else:
        fig.add_annotation(
            text="batch 1: no batch-mates, and BatchNorm1d refuses train mode",
            x=4.5,
            y=0.9,
            showarrow=False,
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="class", tickvals=classes, row=1, col=2)
    fig.update_yaxes(title_text="probability", tickformat=".0%", range=[0, 1.02], row=1, col=2)
    fig.update_layout(barmode="group")
    return style(fig, "One test image, different batch-mates (MLP with BatchNorm1d)", font_size, height=400)


# --- 4. small-batch training -------------------------------------------------------------------------------
@of_finished_results
def sweep(result, batch: int, font_size: int = 14) -> go.Figure:
    """Final test accuracy per norm against the training batch size; and train- vs eval-mode for BN/Renorm."""
    fig = make_subplots(
        1,
        2,
        horizontal_spacing=0.1,
        subplot_titles=(
            "test accuracy (eval mode) after training at batch B",
            "batch-statistics norms: eval mode vs train mode at batch B",
        ),
    )
    for col in (1, 2):
        _mark(fig, batch, row=1, col=col)
    for i, kind in enumerate(result.norms):
        label = NORM_LABELS.get(kind, kind)
        fig.add_scatter(
            x=result.sizes,
            y=result.test_acc[i],
            mode="lines+markers",
            name=label,
            line_color=norm_color(kind),
            hovertemplate="batch %{x}: %{y:.1%}",
            row=1,
            col=1,
        )
        if kind in BATCH_STAT_NORMS:
            fig.add_scatter(
                x=result.sizes,
                y=result.test_acc[i],
                mode="lines+markers",
                showlegend=False,
                name=f"{label}, eval mode",
                line_color=norm_color(kind),
                hovertemplate="eval mode, batch %{x}: %{y:.1%}",
                row=1,
                col=2,
            )
            fig.add_scatter(
                x=result.sizes,
                y=result.train_mode_acc[i],
                mode="lines+markers",
                name=f"{label}, train mode (dashed)",
                line=dict(color=norm_color(kind), dash="dash"),
                hovertemplate="train mode, batch %{x}: %{y:.1%}",
                row=1,
                col=2,
            )
        diverged = [int(s) for s, d in zip(result.sizes, result.diverged_at[i]) if d is not None]
        if diverged:
            fig.add_scatter(
                x=diverged,
                y=[0.02] * len(diverged),
                mode="markers",
                name=f"{label}: diverged",
                marker=dict(symbol="x", size=12, color=norm_color(kind)),
                row=1,
                col=1,
            )
    for col in (1, 2):
        _batch_axis(fig, result.sizes, row=1, col=col)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_yaxes(title_text="test accuracy", col=1)  # the right panel's would fall on the left one's plot
    return style(
        fig,
        "Training at batch size B (same samples seen; learning rate "
        + ("× B/32)" if result.spec.lr_scaling == "linear" else "fixed)"),
        font_size,
        height=430,
    )


# --- 5. the online stream ----------------------------------------------------------------------------------
@of_finished_results
def stream(result, font_size: int = 14) -> go.Figure:
    """Test accuracy over the stream per norm, and the batch size of every step."""
    fig = make_subplots(2, 1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
    for i, kind in enumerate(result.norms):
        fig.add_scatter(
            x=result.stream_eval_steps,
            y=result.stream_acc[:, i],
            mode="lines",
            name=NORM_LABELS.get(kind, kind),
            line_color=norm_color(kind),
            row=1,
            col=1,
        )
    steps = np.arange(1, len(result.stream_batch) + 1)
    ones = result.stream_batch == 1
    fig.add_bar(
        x=steps[~ones],
        y=result.stream_batch[~ones],
        marker_color="#bbbbbb",
        name="batch size",
        showlegend=False,
        row=2,
        col=1,
    )
    fig.add_scatter(
        x=steps[ones],
        y=np.ones(int(ones.sum())),
        mode="markers",
        name="batch of 1",
        marker=dict(symbol="triangle-down", size=10, color=CRASH_COLOR),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text="test accuracy", tickformat=".0%", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="batch size", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    return style(fig, "Online stream: the batch size changes every step", font_size, height=480)


# --- 6. fine-tuning with frozen BN -------------------------------------------------------------------------
@of_finished_results
def finetune(result, font_size: int = 14) -> go.Figure:
    """Running-stat drift and test accuracy while fine-tuning with BN frozen in two ways."""
    f = result.finetune
    fig = make_subplots(
        1,
        3,
        horizontal_spacing=0.08,
        subplot_titles=(
            "running mean moved (in pretrained stds)",
            "running var moved (|ln ratio|)",
            "test accuracy, eval mode",
        ),
    )
    for c, case in enumerate(FINETUNE_CASES):
        color = CASE_COLORS[case]
        fig.add_scatter(
            x=f.steps,
            y=f.mean_drift[:, c],
            name=f"BN frozen by {case}",
            line_color=color,
            legendgroup=case,
            row=1,
            col=1,
        )
        fig.add_scatter(
            x=f.steps, y=f.var_drift[:, c], showlegend=False, line_color=color, legendgroup=case, row=1, col=2
        )
        for cam, dash in ((0, "solid"), (1, "dot")):
            fig.add_scatter(
                x=f.eval_steps,
                y=f.acc[:, c, cam],
                line=dict(color=color, dash=dash),
                name=f"{case}: {'old' if cam == 0 else 'new'} camera",
                showlegend=False,
                legendgroup=case,
                hovertemplate=("old" if cam == 0 else "new") + " camera: %{y:.1%}",
                row=1,
                col=3,
            )
    fig.update_xaxes(title_text="fine-tuning step")
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], row=1, col=3)
    return style(
        fig,
        "Fine-tuning on a new camera with BatchNorm 'frozen' (solid: old camera, dotted: new)",
        font_size,
        height=400,
    )
