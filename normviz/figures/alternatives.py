"""Figures of the Alternatives view: the (N, C, H*W) axes cube, the small tensor with its statistic sets,
every norm's training curves, the cost bars, SyncBN against the per-worker batch, and the RNN charts."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normviz.experiments.alternatives import AXES_KINDS, SETS_HELP, set_label, set_stats
from normviz.experiments.rnn_norms import NORMS as RNN_NORMS
from normviz.experiments.rnn_norms import REPEATS, TRAIN_STEPS
from normviz.experiments.sync_bn import MODES
from normviz.figures.memo import of_finished_results
from normviz.figures.style import REFERENCE_COLOR, norm_color, style
from normviz.layers import NORM_LABELS

AXIS_TITLES = {"n": "N (batch)", "c": "C (channels)", "hw": "H,W (spatial)"}
GRID = "#9a9a9a"


def _box(x0, x1, y0, y1, z0, z1, offset=0):
    """A cuboid as Mesh3d vertices and triangles (indices shifted by `offset`)."""
    xs, ys, zs = [x0, x1, x1, x0, x0, x1, x1, x0], [y0, y0, y1, y1, y0, y0, y1, y1], [z0, z0, z0, z0, z1, z1, z1, z1]
    faces = [
        (0, 1, 2),
        (0, 2, 3),
        (4, 5, 6),
        (4, 6, 7),
        (0, 1, 5),
        (0, 5, 4),
        (2, 3, 7),
        (2, 7, 6),
        (1, 2, 6),
        (1, 6, 5),
        (0, 3, 7),
        (0, 7, 4),
    ]
    i, j, k = ([f[a] + offset for f in faces] for a in range(3))
    return xs, ys, zs, i, j, k


def _edges(x0, x1, y0, y1, z0, z1):
    """The 12 edges of a cuboid as one polyline broken by None."""
    corners = [
        (x0, y0, z0),
        (x1, y0, z0),
        (x1, y1, z0),
        (x0, y1, z0),
        (x0, y0, z1),
        (x1, y0, z1),
        (x1, y1, z1),
        (x0, y1, z1),
    ]
    pairs = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]
    out = ([], [], [])
    for a, b in pairs:
        for axis in range(3):
            out[axis].extend([corners[a][axis], corners[b][axis], None])
    return out


def _set_boxes(sets: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Per set: (c0, c1, n0, n1) half-open ranges; every set of BN/LN/IN/GN covers all positions."""
    boxes = []
    for k in range(int(sets.max()) + 1):
        n_idx, c_idx, _ = np.nonzero(sets == k)
        boxes.append((int(c_idx.min()), int(c_idx.max()) + 1, int(n_idx.min()), int(n_idx.max()) + 1))
    return boxes


@of_finished_results
def axes_cube(result, font_size: int = 14) -> go.Figure:
    """The GroupNorm paper's figure on this tensor's shape: per norm, the values one mean/var is computed
    over (shaded), and the borders of all the other sets (lines)."""
    n, c, hw = result.shape
    titles = [f"<b>{set_label(k, result.groups)}</b><br>{SETS_HELP[k]}" for k in AXES_KINDS]
    cols = 3  # BN, LN, IN in the first row; GN and RMSNorm in the second
    rows = -(-len(AXES_KINDS) // cols)
    specs = [[{"type": "scene"} if r * cols + c < len(AXES_KINDS) else None for c in range(cols)] for r in range(rows)]
    fig = make_subplots(  # room between the rows for a phone's wrapped titles
        rows, cols, specs=specs, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.25
    )
    for i, kind in enumerate(AXES_KINDS):
        pos = dict(row=i // cols + 1, col=i % cols + 1)
        boxes = _set_boxes(result.sets[kind])
        lx, ly, lz = [], [], []
        for c0, c1, n0, n1 in boxes:
            ex, ey, ez = _edges(c0, c1, n0, n1, 0, hw)
            lx += ex
            ly += ey
            lz += ez
        fig.add_scatter3d(
            x=lx, y=ly, z=lz, mode="lines", line=dict(color=GRID, width=2), hoverinfo="skip", showlegend=False, **pos
        )
        c0, c1, n0, n1 = boxes[0]
        xs, ys, zs, i, j, k = _box(c0, c1, n0, n1, 0, hw)
        count = (c1 - c0) * (n1 - n0) * hw
        fig.add_mesh3d(
            x=xs,
            y=ys,
            z=zs,
            i=i,
            j=j,
            k=k,
            color=norm_color(kind),
            opacity=0.85,
            flatshading=True,
            name=NORM_LABELS[kind],
            showlegend=False,
            **pos,
            hovertemplate=f"one mean/var over these {count} values<extra>{NORM_LABELS[kind]}</extra>",
        )
        ex, ey, ez = _edges(c0, c1, n0, n1, 0, hw)
        fig.add_scatter3d(
            x=ex,
            y=ey,
            z=ez,
            mode="lines",
            line=dict(color=REFERENCE_COLOR, width=5),
            hoverinfo="skip",
            showlegend=False,
            **pos,
        )
    axis = dict(showticklabels=False, showgrid=False, zeroline=False, showbackground=False, showspikes=False)
    scene = dict(
        xaxis=dict(axis, title=AXIS_TITLES["c"], range=[-0.2, c + 0.2]),
        yaxis=dict(axis, title=AXIS_TITLES["n"], range=[-0.2, n + 0.2]),
        zaxis=dict(axis, title=AXIS_TITLES["hw"], range=[-0.2, hw + 0.2]),
        aspectmode="manual",
        aspectratio=dict(x=1.3, y=1.0, z=1.0),
        camera=dict(eye=dict(x=-1.7, y=-2.0, z=1.3), projection=dict(type="orthographic")),
    )
    fig.update_layout({f"scene{i if i > 1 else ''}": scene for i in range(1, len(AXES_KINDS) + 1)})
    return style(fig, None, font_size, height=760)


@of_finished_results
def tensor_sets(result, kind: str, font_size: int = 14) -> go.Figure:
    """The small tensor laid out flat (rows: samples; columns: channels, each with its positions), with a box
    around every set one mean/var is computed over; left the values, right the normalised values."""
    n, c, hw = result.shape
    sets = result.sets[kind]
    mean, var, _ = set_stats(result.x, sets)
    width = hw + 1  # a blank column between channels
    cols = np.arange(c * width - 1)

    def flat(a):
        out = np.full((n, c * width - 1), np.nan, np.float32)
        for ch in range(c):
            out[:, ch * width : ch * width + hw] = a[:, ch]
        return out

    hover = np.full((n, c * width - 1), "", object)
    for s in range(n):
        for ch in range(c):
            k = sets[s, ch, 0]
            for p in range(hw):
                hover[s, ch * width + p] = (
                    f"sample {s}, channel {ch}, position {p}<br>x = {result.x[s, ch, p]:.3f}, "
                    f"x̂ = {result.x_hat[kind][s, ch, p]:.3f}<br>set {k}: mean {mean[k]:.3f}, "
                    f"variance {var[k]:.3f}"
                )
    titles = (
        f"x: the small tensor (a random conv of {n} digits, average-pooled)",
        f"x̂ = (x − mean) / √(variance + ε), with {NORM_LABELS[kind]}'s sets",
    )
    fig = make_subplots(2, 1, subplot_titles=titles, vertical_spacing=0.22)
    for row, (a, bar_y) in enumerate(((result.x, 0.8), (result.x_hat[kind], 0.2)), start=1):
        z = flat(a)
        lim = float(np.nanmax(np.abs(z))) or 1.0
        fig.add_heatmap(
            z=z,
            x=cols,
            y=np.arange(n),
            colorscale="RdBu_r",
            zmin=-lim,
            zmax=lim,
            text=hover,
            hovertemplate="%{text}<extra></extra>",
            row=row,
            col=1,
            colorbar=dict(len=0.38, y=bar_y, thickness=12),
        )
        for c0, c1, n0, n1 in _set_boxes(sets):
            fig.add_shape(
                type="rect",
                x0=c0 * width - 0.5,
                x1=c1 * width - 1.5,
                y0=n0 - 0.5,
                y1=n1 - 0.5,
                line=dict(color=norm_color(kind), width=3),
                row=row,
                col=1,
            )
    centers = [ch * width + (hw - 1) / 2 for ch in range(c)]
    fig.update_xaxes(
        tickvals=centers,
        ticktext=[f"c{ch}" for ch in range(c)],
        title_text=AXIS_TITLES["c"] + f": {hw} positions each",
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(
        tickvals=list(range(n)),
        ticktext=[f"n{s}" for s in range(n)],
        autorange="reversed",
        title_text=AXIS_TITLES["n"],
        showgrid=False,
        zeroline=False,
    )
    n_sets = int(sets.max()) + 1
    title = (
        f"{set_label(kind, result.groups)}: {n_sets} boxes = {n_sets} means and variances, "
        f"{sets.size // n_sets} values each"
    )
    return style(fig, title, font_size, height=520)


@of_finished_results
def zoo_curves(result, font_size: int = 14) -> go.Figure:
    """Training loss per step (smoothed) and test accuracy (eval mode), one colour per norm; with several
    seeds, the mean and a band from the lowest to the highest seed."""
    seeds = result.test_acc.shape[-1]
    mean = " (mean of the seeds)" if seeds > 1 else ""
    window = max(10, len(result.loss) // 30)
    fig = make_subplots(
        1, 2, subplot_titles=(f"training loss{mean}, averaged over {window} steps", f"test accuracy (eval mode){mean}")
    )
    steps = np.arange(1, len(result.loss) + 1)
    for k, norm in enumerate(result.norms):
        label = NORM_LABELS.get(norm, norm)
        kw = dict(line_color=norm_color(norm), legendgroup=norm, name=label)
        fig.add_scatter(x=steps, y=_smooth(result.loss[:, k], window), mode="lines", row=1, col=1, **kw)
        acc = result.test_acc[:, k]  # (T, R)
        if seeds > 1:
            band = dict(legendgroup=norm, showlegend=False, hoverinfo="skip", mode="lines", line_width=0, row=1, col=2)
            fig.add_scatter(x=result.probe_steps, y=acc.max(-1), **band)
            fig.add_scatter(
                x=result.probe_steps, y=acc.min(-1), fill="tonexty", fillcolor=_faint(norm_color(norm)), **band
            )
        fig.add_scatter(
            x=result.probe_steps,
            y=acc.mean(-1),
            mode="lines+markers",
            marker_size=5,
            showlegend=False,
            row=1,
            col=2,
            **kw,
        )
    fig.update_yaxes(rangemode="tozero", title_text="cross-entropy", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    fig.update_xaxes(title_text="training step")
    return style(fig, None, font_size, height=400)


def _faint(hex_color: str, alpha: float = 0.18) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _smooth(y: np.ndarray, window: int = 10) -> np.ndarray:
    """Trailing mean (NaN where a model stopped)."""
    if len(y) == 0:
        return y
    c = np.cumsum(np.insert(np.nan_to_num(y.astype(np.float64)), 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    out = (c[idx] - c[lo]) / (idx - lo)
    return np.where(np.isfinite(y), out, np.nan)


@of_finished_results
def cost_bars(result, font_size: int = 14) -> go.Figure:
    """Per batch size: ms per training step, split into the norm layers (by ablation) and the rest."""
    sizes = result.batch_sizes
    fig = make_subplots(
        1, len(sizes), subplot_titles=[f"batch {b}" for b in sizes], shared_yaxes=True, horizontal_spacing=0.03
    )
    rows = [(k, norm, impl) for k, (norm, impl) in enumerate(result.configs) if norm != "none"]
    labels = [f"{NORM_LABELS.get(norm, norm)} · {'ours' if impl == 'ours' else 'torch'}" for _, norm, impl in rows]
    base, share = result.baseline(), result.share()
    for j in range(len(sizes)):
        rest = np.full(len(rows), base[j])
        extra = np.array([result.ms[k, j] - base[j] for k, _, _ in rows])
        colors = [norm_color(norm) for _, norm, _ in rows]
        fig.add_bar(
            y=labels,
            x=rest,
            orientation="h",
            marker_color="#d0d0d0",
            name="same step without norm layers",
            showlegend=j == 0,
            legendgroup="rest",
            row=1,
            col=j + 1,
            hovertemplate="no-norm step: %{x:.2f} ms<extra></extra>",
        )
        fig.add_bar(
            y=labels,
            x=np.clip(extra, 0, None),
            orientation="h",
            name="extra time with the norm layers",
            marker=dict(color=colors, pattern_shape=["" if impl == "ours" else "/" for _, _, impl in rows]),
            text=[_share_label(share[k, j]) for k, _, _ in rows],
            textposition="outside",
            showlegend=j == 0,
            legendgroup="norm",
            row=1,
            col=j + 1,
            hovertemplate="norm layers: %{x:.2f} ms (%{text} of the step)<extra></extra>",
        )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="ms per training step", rangemode="tozero")
    for j in range(len(sizes)):  # room for the share labels right of the bars
        top = np.nanmax(result.ms[:, j]) if np.isfinite(result.ms[:, j]).any() else 1.0
        fig.update_xaxes(range=[0, 1.25 * top], row=1, col=j + 1)
    return style(
        fig,
        "Time per training step (fastest of several rounds); label: share spent in the norm layers",
        font_size,
        height=110 + 34 * len(rows),
    )


def _share_label(share: float) -> str:
    if not np.isfinite(share):
        return ""
    return f"{share:.0%}" if share >= 0 else "<0: noise"


@of_finished_results
def sync_figure(result, font_size: int = 14) -> go.Figure:
    """Against the per-worker batch b: test accuracy, and how far the batch statistics stray from the data's."""
    b = np.array(result.sub_batches)
    w = result.spec.workers
    fig = make_subplots(
        1,
        3,
        subplot_titles=(
            "test accuracy (eval mode)",
            "batch mean: RMS of (μ_B − μ) / σ",
            "batch variance: median of |var_B / var − 1|",
        ),
        horizontal_spacing=0.08,
    )
    names = {"local": "per-worker BN (statistics of b samples)", "sync": f"SyncBN (statistics of W·b = {w}·b)"}
    colors = {"local": norm_color("batch"), "sync": norm_color("sync")}
    for i, mode in enumerate(MODES):
        kw = dict(line_color=colors[mode], legendgroup=mode, mode="lines+markers", marker_size=8)
        fig.add_scatter(x=b, y=result.test_acc[i], name=names[mode], row=1, col=1, **kw)
        fig.add_scatter(x=b, y=result.noise_mean[i], showlegend=False, row=1, col=2, **kw)
        fig.add_scatter(x=b, y=result.noise_var[i], showlegend=False, row=1, col=3, **kw)
    values = result.values_per_channel.astype(float)
    for i, factor in enumerate((1, w)):
        fig.add_scatter(
            x=b,
            y=1 / np.sqrt(values * factor),
            mode="lines",
            line=dict(color="#444", dash="dot"),
            name="1/√(values averaged), if they were independent",
            showlegend=i == 0,
            row=1,
            col=2,
        )
    for key, note in result.notes.items():
        mode, bval = key.split(" b=")
        fig.add_annotation(
            x=np.log2(int(bval)),
            y=0.05,
            text="refused" if "Expected" in note else "diverged",
            showarrow=False,
            font_color=colors[mode],
            row=1,
            col=1,
        )
    fig.update_xaxes(type="log", tickvals=b, title_text="per-worker batch b")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_yaxes(rangemode="tozero", row=1, col=3)
    return style(fig, None, font_size, height=400)


@of_finished_results
def rnn_curves(result, font_size: int = 14) -> go.Figure:
    fig = make_subplots(
        1,
        2,
        subplot_titles=("training loss (mean of the last 10 steps)", f"test accuracy (eval mode, {TRAIN_STEPS} steps)"),
    )
    steps = np.arange(1, len(result.loss) + 1)
    for k, norm in enumerate(RNN_NORMS):
        kw = dict(line_color=norm_color(norm), legendgroup=norm, name=_rnn_label(norm))
        fig.add_scatter(x=steps, y=_smooth(result.loss[:, k]), mode="lines", row=1, col=1, **kw)
        fig.add_scatter(
            x=result.probe_steps,
            y=result.test_acc[:, k],
            mode="lines+markers",
            marker_size=5,
            showlegend=False,
            row=1,
            col=2,
            **kw,
        )
    fig.update_yaxes(rangemode="tozero", title_text="cross-entropy", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    fig.update_xaxes(title_text="training step")
    return style(fig, None, font_size, height=380)


def _rnn_label(norm: str) -> str:
    return {"batch": "BatchNorm (per time step)", "layer": "LayerNorm (shared)", "none": "no norm"}[norm]


@of_finished_results
def rnn_bn_stats(result, font_size: int = 14) -> go.Figure:
    """The running statistics per-time-step BN keeps: one row per step, one column per hidden unit."""
    fig = make_subplots(1, 2, subplot_titles=("running mean", "running variance"), horizontal_spacing=0.16)
    steps = np.arange(result.bn_mean.shape[0])
    for col, (a, scale, x_bar) in enumerate(((result.bn_mean, "RdBu_r", 0.43), (result.bn_var, "Viridis", 1.0)), 1):
        lim = float(np.abs(a).max())
        extra = dict(zmin=-lim, zmax=lim) if col == 1 else dict(zmin=0)
        fig.add_heatmap(
            z=a,
            y=steps,
            colorscale=scale,
            colorbar=dict(x=x_bar, thickness=12),
            row=1,
            col=col,
            hovertemplate="step %{y}, unit %{x}: %{z:.3f}<extra></extra>",
            **extra,
        )
    fig.update_xaxes(title_text="hidden unit")
    fig.update_yaxes(title_text="time step t (image row)", autorange="reversed", tickvals=steps)
    return style(
        fig,
        f"What per-step BatchNorm must store: {len(steps)} x {a.shape[1]} means and variances",
        font_size,
        height=360,
    )


@of_finished_results
def rnn_long(result, font_size: int = 14) -> go.Figure:
    """Left: accuracy on longer sequences (the image read again). Right: per step, the std of what BN's input
    really is on the test set, against the running std BN divides by there."""
    lengths = [TRAIN_STEPS * r for r in REPEATS]
    fig = make_subplots(
        1,
        2,
        subplot_titles=("test accuracy vs sequence length", "per-step BN at each step of a 24-step sequence"),
        horizontal_spacing=0.1,
    )
    for norm in RNN_NORMS:
        label = _rnn_label(norm) + (" — steps ≥ 8 reuse step 7's" if norm == "batch" else "")
        fig.add_scatter(
            x=lengths,
            y=result.long_acc[norm],
            mode="lines+markers",
            marker_size=8,
            line_color=norm_color(norm),
            name=label,
            row=1,
            col=1,
        )
    t = np.arange(len(result.seen_std))
    fig.add_scatter(
        x=t,
        y=result.seen_std,
        mode="lines+markers",
        line_color=norm_color("batch"),
        marker_size=6,
        name="std BN's input really has (test set)",
        row=1,
        col=2,
    )
    fig.add_scatter(
        x=t,
        y=result.used_std,
        mode="lines",
        line=dict(color=REFERENCE_COLOR, dash="dash", shape="hv"),
        name="std BN divides by (running statistics of step min(t, 7))",
        row=1,
        col=2,
    )
    fig.add_vline(
        x=TRAIN_STEPS - 0.5,
        line=dict(color="#444", dash="dash"),
        row=1,
        col=2,
        annotation_text="longer than<br>training →",
        annotation_position="bottom right",
    )
    fig.update_xaxes(title_text="sequence length (steps)", tickvals=lengths, row=1, col=1)
    fig.update_xaxes(title_text="time step t", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", title_text="std (mean over hidden units)", row=1, col=2)
    fig = style(fig, None, font_size, height=430)
    fig.update_layout(legend=dict(orientation="h", y=-0.25, yanchor="top"))
    return fig
