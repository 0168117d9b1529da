"""What BN by hand says: one BatchNorm1d training step worked formula by formula with the page's numbers
(`steps`, `backward_step`), the edge cases this batch runs into (`notes`), the tables the page shows, and the
step as one table for the offline report (`panels`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from normviz.config import Preset
from normviz.experiments.by_hand import VECTORS, ByHandResult, ByHandSpec, format_number
from normviz.figures.style import style
from normviz.panels import Chart, Panel, Text, Worked
from normviz.views import Part

INTRO = (
    "One training step of `torch.nn.BatchNorm1d` on a small batch, formula by formula with your numbers "
    "(numpy, float64), then checked against torch itself. Edit any white cell; the link keeps your edits."
)
EDGE_CASES = (
    "- **B = 1**: `nn.BatchNorm1d` refuses to train (“Expected more than 1 value per channel”): one sample "
    "has variance 0, so x̂ = 0 and y = β for any input, and B/(B−1) divides by zero.\n"
    "- **B = 2 gives ±1**: σ_B is half the gap between the two values, so x̂ = ±1.\n"
    "- **A constant feature**: σ² = 0; ε alone keeps x̂ = 0/√ε from being 0/0, and the gradient of that "
    "feature is scaled by 1/√ε.\n"
    "- **Huge ε**: x̂ no longer has standard deviation 1; BN only centres."
)
GRADIENT_DIFF = "Largest absolute difference between the closed form and autograd through `nn.BatchNorm1d`."


def tips(r: ByHandResult, section: str) -> list[Text]:
    """The notes of one section ("forward" or "backward"), as the page shows them."""
    return [Text(f"**{title}.** {text}", "info") for title, text, where in notes(r) if where == section]


def momentum_caption(r: ByHandResult) -> str:
    s = r.spec
    return (
        f"Momentum m = {r.momentum:.4g} in PyTorch's convention (weight of the new batch) = "
        f"{1 - r.momentum:.4g} in Keras'. You entered {s.momentum:g} as "
        f"{'PyTorch' if s.convention == 'pytorch' else 'Keras'} momentum (sidebar); ε = {s.eps:g}."
    )


def torch_refused(r: ByHandResult) -> str:
    return f"torch says: “{r.torch_error}”. The hand computation above still runs; see the note on B = 1."


def torch_diff_caption(spec: ByHandSpec) -> str:
    """What the differences from torch should be: rounding, at each precision's machine epsilon."""
    eps64, eps32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
    return (
        "Largest absolute difference between the hand computation (numpy, float64) and `nn.BatchNorm1d` with "
        f"the same γ, β, ε, momentum and running statistics. In float64 it is 0 up to rounding (~{eps64:.0e}); "
        f"torch's float32 adds its own rounding (~{eps32:.0e}, more where ε divides a tiny difference)."
        + (
            " For the biased estimator, torch's running var is refolded with torch.var(correction=0): "
            "nn.BatchNorm1d itself always uses B/(B−1)."
            if spec.var_estimator == "biased"
            else ""
        )
    )


COMPARED = {
    "y": "y (train mode)",
    "running_mean": "running mean (after)",
    "running_var": "running var (after)",
    "y_new": "eval-mode output of the new sample",
    "dgamma": "dL/dgamma",
    "dbeta": "dL/dbeta",
    "dx": "dL/dx",
}


def notes(r: ByHandResult) -> list[tuple[str, str, str]]:
    """The edge cases this batch runs into, each explained with its own numbers."""
    h, (b, c), eps = r.hand, r.shape, r.spec.eps
    out = []
    if b == 1:
        out.append(
            (
                "B = 1: torch refuses to train on one sample",
                (
                    f"nn.BatchNorm1d in training mode raises “{r.torch_error}”. With one sample, μ_B is that sample and "  # noqa: E501
                    "σ²_B = 0, so x̂ = 0/√ε = 0 and y = β whatever the input: the output carries no information about x "
                    "and dL/dx = 0. The unbiased running variance would also need B/(B−1) = 1/0 (shown as NaN here). "
                    "A BatchNorm2d with more than one pixel per channel does not refuse: it takes its statistics over "
                    "the pixels of the single image."
                ),
                "forward",
            )
        )
    constant = [j for j in range(c) if np.ptp(r.inputs["x"][:, j]) == 0]
    if b == 2 and len(constant) < c:
        dev = float(np.max(np.abs(np.abs(np.delete(h["x_hat"], constant, axis=1)) - 1)))
        out.append(
            (
                "B = 2: x̂ is ±1",
                (
                    "With two samples each feature's values sit at μ_B ± d, so σ_B = |d| and x̂ = ±|d|/√(d²+ε), "
                    f"which is ±1 up to ε (largest deviation here: {dev:.1e}). Whatever the two values were, "
                    "BatchNorm keeps only which one is larger"
                    + (" (a constant feature has d = 0 and x̂ = 0)." if constant else ".")
                ),
                "forward",
            )
        )
    if b > 1 and constant:
        names = ", ".join(str(j + 1) for j in constant)
        out.append(
            (
                f"Constant feature ({names}): σ² = 0, so ε matters",
                (
                    f"Every sample has the same value in feature {names}: x − μ_B = 0 and σ²_B = 0, so x̂ = 0/√(0+ε) = 0 "  # noqa: E501
                    "and y = β. Without ε this would be 0/0 = NaN. ε also sets the gradient: for this feature "
                    f"dL/dx = γ(dy − mean(dy))/√ε, a factor 1/√ε = {1 / math.sqrt(eps):.3g} on how much the "
                    "upstream gradients differ between samples." + _float32_note(r, constant)
                ),
                "forward",
            )
        )
    varying = h["var"] > 0
    shrink = np.sqrt(h["var"] / (h["var"] + eps))
    if b > 1 and varying.any() and shrink[varying].min() < 0.99:
        worst = int(np.argmin(np.where(varying, shrink, np.inf)))
        out.append(
            (
                "ε is not small against σ²",
                (
                    f"x̂ has standard deviation √(σ²/(σ²+ε)) instead of 1: {shrink[worst]:.3g} for feature {worst + 1} "
                    f"(σ² = {h['var'][worst]:.3g}, ε = {eps:g}). When ε dominates, BatchNorm no longer normalises: "
                    "it subtracts the mean and divides by about √ε."
                ),
                "forward",
            )
        )
    if b > 1 and np.all(np.ptp(r.inputs["dy"], axis=0) == 0):
        out.append(
            (
                "dL/dx = 0 for an upstream gradient that is the same for every sample",
                (
                    "Each feature's gradient is the same for all samples (the default, all ones). In train mode the "
                    "sum of y over the batch is always B·β and the mean of x̂ is always 0, whatever x is, so such a "
                    "loss cannot change by moving x: dL/dx is exactly 0. Edit dL/dy to see a non-zero dL/dx."
                ),
                "backward",
            )
        )
    return out


def _float32_note(r: ByHandResult, constant: list[int]) -> str:
    if r.torch32 is None:
        return ""
    with np.errstate(divide="ignore", invalid="ignore"):  # γ = 0: no x̂ to recover, those cells are dropped
        x_hat32 = (r.torch32["y"] - r.inputs["beta"]) / r.inputs["gamma"]
    worst = np.nanmax(np.abs(np.where(np.isfinite(x_hat32), x_hat32, np.nan)[:, constant]), initial=0.0)
    return (
        ""
        if worst == 0
        else f" In float32 torch gets x̂ up to {worst:.2g} instead of 0 for it: a rounding error of μ_B (about "
        "1e-7 of its size) divided by √ε."
    )


# --- tables and worked examples for the page ---------------------------------------------------------


def _samples(b):
    return [f"sample {i + 1}" for i in range(b)]


def _features(c):
    return [f"feature {j + 1}" for j in range(c)]


def _clean(m: np.ndarray) -> np.ndarray:
    """Rounding residue of an exact 0 (|v| < 1e-12, e.g. the sum of x̂) shown as 0."""
    return np.where(np.abs(m) < 1e-12, 0.0, m)


def matrix_frame(m: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(_clean(m), index=_samples(m.shape[0]), columns=_features(m.shape[1]))


def rows_frame(rows: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-feature vectors as rows: label -> (C,)."""
    c = len(next(iter(rows.values())))
    return pd.DataFrame(_clean(np.stack(list(rows.values()))), index=list(rows), columns=_features(c))


def params_frame(spec: ByHandSpec) -> pd.DataFrame:
    a = spec.arrays()
    return rows_frame({label: a[name] for name, (label, _) in VECTORS.items()})


def grad_frame(r: ByHandResult) -> pd.DataFrame:
    """dL/dβ and dL/dγ by the closed form and by autograd (nn.BatchNorm1d, float64), per feature."""
    rows = {"dL/dbeta (closed form)": r.hand["dbeta"], "dL/dgamma (closed form)": r.hand["dgamma"]}
    if r.torch64 is not None:
        rows |= {"dL/dbeta (autograd)": r.torch64["dbeta"], "dL/dgamma (autograd)": r.torch64["dgamma"]}
    return rows_frame(rows)


def diff_table(r: ByHandResult, names) -> pd.DataFrame:
    """max |hand − torch| per quantity, torch in float64 and in float32."""
    return pd.DataFrame(
        {
            "max |hand − torch|, float64": [r.diff(n, "float64") for n in names],
            "max |hand − torch|, float32": [r.diff(n, "float32") for n in names],
        },
        index=[COMPARED[n] for n in names],
    )


def _step(r: ByHandResult, title: str, formula, worked, table: pd.DataFrame, caption: str) -> Worked:
    return Worked(title, formula, worked, (("", table),), caption, side_by_side=r.shape[1] <= 3)


def _tex(v: float, paren: bool = False) -> str:
    """A number for LaTeX: 4 significant digits, powers of ten written out, negatives bracketed in products."""
    if not math.isfinite(v):
        return r"\text{NaN}"
    if abs(v) < 1e-12:  # float64 rounding of an exact 0 (e.g. the sum of x̂), not a number to read
        v = 0.0
    s = f"{v:.4g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"10^{{{int(exp)}}}" if mant == "1" else f"{mant}\\times 10^{{{int(exp)}}}"
    return f"({s})" if paren and v < 0 else s


def _list(terms: list[str]) -> str:
    return ",\\ ".join(terms if len(terms) <= 5 else [*terms[:3], r"\dots", terms[-1]])


def _sum(terms: list[str]) -> str:
    """t1 + t2 + ...; a term written with a leading minus is subtracted; long sums are elided."""
    if len(terms) > 5:
        terms = [*terms[:3], r"\dots", terms[-1]]
    return terms[0] + "".join(f" - {t[1:]}" if t.startswith("-") else f" + {t}" for t in terms[1:])


def steps(r: ByHandResult, j: int = 0) -> list[Worked]:
    """The forward pass step by step: general formula, the worked example for feature j (sample 1), numbers."""
    h, a, b = r.hand, r.inputs, r.shape[0]
    s, m, eps = r.spec, r.momentum, _tex(r.spec.eps)
    xs, mu, var = a["x"][:, j], h["mean"][j], h["var"][j]
    g, be = a["gamma"][j], a["beta"][j]
    conv = (
        ""
        if s.convention == "pytorch"
        else f"Keras momentum {s.momentum:g} is the weight of the old value, so m = 1 − {s.momentum:g} = {m:.4g}. "
    )
    unbiased = s.var_estimator == "unbiased"
    factor = r"\tfrac{B}{B-1}" if unbiased else ""
    var_in = h["var_unbiased"][j] if unbiased else var
    rv_alt = "running var (after, biased)" if unbiased else "running var (after, unbiased)"
    out = [
        _step(
            r,
            "1. Batch mean and variance (per feature, over the B samples)",
            (r"\mu_B=\frac1B\sum_{i=1}^{B}x_i", r"\sigma_B^2=\frac1B\sum_{i=1}^{B}(x_i-\mu_B)^2"),
            (
                rf"\mu_B=\tfrac1{{{b}}}({_sum([_tex(v) for v in xs])})={_tex(mu)}",
                rf"x_i-\mu_B:\ {_list([_tex(v - mu) for v in xs])}",
                rf"\sigma_B^2=\tfrac1{{{b}}}({_sum([_tex((v - mu) ** 2) for v in xs])})={_tex(var)}",
            ),
            rows_frame(
                {
                    "μ_B": h["mean"],
                    "σ²_B (biased, 1/B)": h["var"],
                    "B/(B−1)·σ²_B (unbiased)": h["var_unbiased"],
                    "√(σ²_B + ε)": h["std"],
                }
            ),
            "Training normalises with the biased variance (divide by B). The unbiased one (divide by B − 1) "
            "only enters the running variance, in PyTorch.",
        ),
        _step(
            r,
            "2. Normalise: x̂",
            (r"\hat x_i=\frac{x_i-\mu_B}{\sqrt{\sigma_B^2+\epsilon}}",),
            (
                rf"\hat x_1=\frac{{{_tex(xs[0])}-{_tex(mu, True)}}}{{\sqrt{{{_tex(var)}+{eps}}}}}"
                rf"={_tex(h['x_hat'][0, j])}",
            ),
            matrix_frame(h["x_hat"]),
            "Each column now has mean 0 and a standard deviation of √(σ²/(σ²+ε)), about 1 when ε ≪ σ².",
        ),
        _step(
            r,
            "3. Scale and shift: y",
            (r"y_i=\gamma\,\hat x_i+\beta",),
            (rf"y_1={_tex(g)}\cdot{_tex(h['x_hat'][0, j], True)}+{_tex(be, True)}={_tex(h['y'][0, j])}",),
            matrix_frame(h["y"]),
            "γ and β are learned: with γ = √(σ²+ε) and β = μ_B the layer could undo the normalisation.",
        ),
        _step(
            r,
            "4. Running statistics (used later, in eval mode)",
            (
                r"\hat\mu\leftarrow(1-m)\,\hat\mu+m\,\mu_B",
                rf"\hat\sigma^2\leftarrow(1-m)\,\hat\sigma^2+m\,{factor}\sigma_B^2",
            ),
            (
                rf"\hat\mu={_tex(1 - m)}\cdot{_tex(a['running_mean'][j], True)}+{_tex(m)}\cdot{_tex(mu, True)}"
                rf"={_tex(h['running_mean'][j])}",
                rf"\hat\sigma^2={_tex(1 - m)}\cdot{_tex(a['running_var'][j], True)}+{_tex(m)}\cdot"
                rf"{_tex(var_in, True)}={_tex(h['running_var'][j])}",
            ),
            rows_frame(
                {
                    "running mean (before)": a["running_mean"],
                    "running mean (after)": h["running_mean"],
                    "running var (before)": a["running_var"],
                    "running var (after)": h["running_var"],
                    rv_alt: h["running_var_biased" if unbiased else "running_var_unbiased"],
                }
            ),
            f"m = {m:.4g} in PyTorch's convention (the weight of the new batch). {conv}"
            + (
                "The running var folds in the unbiased B/(B−1)·σ²_B, as PyTorch does."
                if unbiased
                else "The running var folds in the biased σ²_B, as Keras 3 and Flax do."
            )
            + " The last row shows the other estimator for comparison.",
        ),
    ]
    xn, rm, rv = a["x_new"][j], h["running_mean"][j], h["running_var"][j]
    same = np.allclose(h["y_new"], h["y"][0])
    train_y = (
        ""
        if s.x_new or not np.isfinite(h["y_new"]).all()
        else (
            f" In train mode, inside the batch, the same sample gave y = {_fmt_vec(h['y'][0])}: "
            + (
                "the same, because the running statistics now equal the batch's."
                if same
                else "eval mode normalises with the running statistics, not the batch's, so the answers differ."
            )
        )
    )
    out.append(
        _step(
            r,
            "5. Eval mode: a new sample, normalised with the updated running statistics",
            (r"y=\gamma\,\frac{x-\hat\mu}{\sqrt{\hat\sigma^2+\epsilon}}+\beta",),
            (
                rf"y={_tex(g)}\cdot\frac{{{_tex(xn)}-{_tex(rm, True)}}}{{\sqrt{{{_tex(rv)}+{eps}}}}}+{_tex(be, True)}"
                rf"={_tex(h['y_new'][j])}",
            ),
            rows_frame({"new sample x": a["x_new"], "x̂ (eval)": h["x_hat_new"], "y (eval)": h["y_new"]}),
            (
                "The new sample is the batch's first sample (set another in the parameter table)."
                if not s.x_new
                else "The new sample from the parameter table."
            )
            + train_y
            + (
                ""
                if np.isfinite(h["y_new"]).all()
                else " NaN: the unbiased running var needs B/(B−1) = 1/0 with one "
                "sample; choose the biased estimator to see numbers."
            ),
        )
    )
    return out


def backward_step(r: ByHandResult, j: int = 0) -> Worked:
    h, a, b = r.hand, r.inputs, r.shape[0]
    g, std = a["gamma"][j], h["std"][j]
    return Worked(
        "6. Backward pass: closed form",
        (
            r"\frac{\partial L}{\partial\beta}=\sum_i dy_i,\qquad \frac{\partial L}{\partial\gamma}=\sum_i dy_i\,\hat x_i",  # noqa: E501
            r"\frac{\partial L}{\partial x_i}=\frac{\gamma}{B\sqrt{\sigma_B^2+\epsilon}}"
            r"\Big(B\,dy_i-\frac{\partial L}{\partial\beta}-\hat x_i\,\frac{\partial L}{\partial\gamma}\Big)",
        ),
        (
            rf"\frac{{\partial L}}{{\partial\beta}}={_tex(h['dbeta'][j])},\qquad "
            rf"\frac{{\partial L}}{{\partial\gamma}}={_tex(h['dgamma'][j])}",
            rf"\frac{{\partial L}}{{\partial x_1}}=\frac{{{_tex(g)}}}{{{b}\cdot{_tex(std)}}}\big({b}\cdot"
            rf"{_tex(a['dy'][0, j], True)}-{_tex(h['dbeta'][j], True)}-{_tex(h['x_hat'][0, j], True)}\cdot"
            rf"{_tex(h['dgamma'][j], True)}\big)={_tex(h['dx'][0, j])}",
        ),
        (("", grad_frame(r)), ("**dL/dx** (closed form)", matrix_frame(h["dx"]))),
        "dL/dx by the closed form (numpy, float64); dL/dβ and dL/dγ by the closed form and by autograd.",
        side_by_side=r.shape[1] <= 3,
    )


def _fmt_vec(v) -> str:
    return "(" + ", ".join(f"{t:.4g}" for t in v) + ")"


# --- the offline report ---------------------------------------------------------------------------------


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
    row = lambda v: "[" + ", ".join(format_number(t) for t in v) + "]"
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
