"""What the Running statistics page says around its charts: its introduction, the charts' captions, the
momentum conventions table, why PyTorch's running var is unbiased, the formulas, what to notice, its presets and
its PyTorch snippet."""

from __future__ import annotations

from normviz import snippets
from normviz.config import Preset
from normviz.experiments.running_stats import (
    CONVENTIONS,
    POPULATIONS,
    RAMP_END,
    TRACE_CHANNELS,
    RunningStatsResult,
    RunningStatsSpec,
    effective_window,
    momentum_text,
    start_value_left,
)
from normviz.figures import running_stats as figs
from normviz.panels import Chart, Panel, Text, diverged
from normviz.views import Part

INTRO = (
    "One network trains once. Running statistics never change training in train mode, so every BN layer "
    "keeps one set of running buffers per momentum (plus the cumulative average) on the same batches."
)


def caption_a(spec: RunningStatsSpec) -> str:
    ramp = (
        f" Momentum ramp: m_t = m·(1 − {1 - RAMP_END:g}·(t−1)/(T−1)), from m down to {RAMP_END:g}·m at the last step."
        if spec.schedule == "ramp"
        else ""
    )
    corrected = " (bias-corrected: divided by 1−∏(1−m_t))" if spec.bias_correction else ""
    return (
        f"Lines: running estimates as eval mode uses them{corrected}, momenta in the "
        f"{CONVENTIONS[spec.convention]} convention. Grey dots: each step's batch statistic (variance in the "
        f"{spec.var_estimator} estimator, as the running var folds it in). Green dashed: "
        f"{POPULATIONS['precise']}. Brown dotted: {POPULATIONS['eval']}. The first {TRACE_CHANNELS} channels of "
        f"each layer are traced.{ramp}"
    )


VAR_ESTIMATOR_WORDS = {"unbiased": "unbiased (÷ (n − 1))", "biased": "biased (÷ n)"}


def caption_precise(result: RunningStatsResult) -> str:
    p = result.precise
    return (
        f"After training, every running mean/var was replaced by the equal-weight average of the batch "
        f"statistics of {p['batches']} random training batches of {result.spec.batch_size}, computed in train "
        f"mode with the final weights; each batch variance in the {VAR_ESTIMATOR_WORDS[result.spec.var_estimator]} "
        f"estimator, as the running var keeps it. Error after recalibration against population (a): mean "
        f"{p['err_mean']:.3g}, var {p['err_var']:.3g}. Dashed line: the final train-mode test accuracy."
    )


WHY_UNBIASED = """\
Training normalises each batch with its **biased** variance, (1/n)·Σ(x − μ_B)². That number is, on average,
too small: the batch mean μ_B is fitted to the same n values, so the deviations from it are smaller than the
deviations from the true mean, and E[biased variance] = (n − 1)/n · σ².

Running statistics are meant to estimate the **population** variance σ² that eval mode should divide by, so
PyTorch (and TF's fused kernel) multiply each batch variance by **n/(n − 1)** (Bessel's correction) before folding
it into `running_var`. Keras 3, Flax and the book keep the biased one; their running variance is smaller by
(n − 1)/n: 1.6% at batch 64, 50% at batch 2. Set *Var estimator* to *biased* in the preset *frozen network: only
noise*: in the first BN layer the cumulative average's variance error against population (b) then settles at about
1/n instead of near 0. Chart B averages all layers, and the deeper layers' own error floor (see *Two populations*)
is larger than 1/n, so there the estimator changes the line only a little. Against population (a), which averages
the batch variances in the running var's own estimator, it changes nothing once the start value has faded.

Here n is the number of values per channel in the batch (batch size × spatial positions for conv layers)."""

FORMULAS = [
    r"\text{PyTorch: } \hat\mu_t = (1-m)\,\hat\mu_{t-1} + m\,\mu_{B_t},\qquad "
    r"\hat\sigma^2_t = (1-m)\,\hat\sigma^2_{t-1} + m\,\tfrac{n}{n-1}\,\sigma^2_{B_t}",
    r"\text{Keras/TF/Flax: } \hat\mu_t = m_K\,\hat\mu_{t-1} + (1-m_K)\,\mu_{B_t},\qquad m_K = 1 - m",
    r"\text{momentum=None (CMA): } \hat\mu_t = \hat\mu_{t-1} + \tfrac{1}{t}\,(\mu_{B_t} - \hat\mu_{t-1})"
    r" = \tfrac1t \textstyle\sum_{s\le t} \mu_{B_s}",
    r"\text{bias-corrected EMA: } \tilde\mu_t = \hat\mu_t \,/\, \big(1 - \textstyle\prod_{s\le t}(1-m_s)\big)"
    r"\quad(\hat\mu_0 = 0)",
    rf"\text{{ramp: }} m_t = m\,\big(1 - {1 - RAMP_END:g}\,\tfrac{{t-1}}{{T-1}}\big),\qquad "
    r"\text{window} \approx 1/m \text{ steps}",
    r"\text{errors: } \frac{|\hat\mu - \mu_{pop}|}{\sqrt{\sigma^2_{pop}+\epsilon}},\qquad "
    r"\left|\frac{\hat\sigma^2+\epsilon}{\sigma^2_{pop}+\epsilon} - 1\right| "
    r"\text{ averaged over all channels of all BN layers}",
]

WHAT_TO_NOTICE = """\
- **Start-up:** every EMA starts from its initial value (mean 0, var 1 in PyTorch) and forgets it as (1−m)^t:
  after about 1/m steps (the dotted lines in B) most of it is gone. The cumulative average and the
  bias-corrected EMA have no start-up bias at all.
- **Noise vs lag:** a large momentum follows the last few batches (noisy, fast); a small one averages many
  (smooth, slow). With lr = 0 the population stands still and smaller is simply better; while the network
  trains, a tiny momentum describes a network that no longer exists.
- **Eval accuracy (C)** drops exactly where the running stats are wrong: that is the "works in training, fails
  in eval" bug. PreciseBN recomputes the statistics with the final weights and closes the gap.
- **Two populations:** against (b), what eval mode actually meets, even a perfect EMA keeps a small error floor in
  deeper layers, because in training the earlier layers normalise with noisy batch statistics."""


def caption_b(population: str) -> str:
    return (
        f"Channel-averaged errors, log scale, against {POPULATIONS[population]}. Dotted verticals: each "
        "momentum's effective window 1/m (PyTorch convention); the start-up bias has decayed by e there."
    )


def caption_c(spec: RunningStatsSpec) -> str:
    return (
        "Eval mode normalises with one momentum's running stats; train mode with each test batch's own "
        f"statistics (batches of {spec.batch_size})."
    )


def first_layer(depth: int) -> int:
    """The layer chart A opens on, counted from 1: layer 1's input mean is 0, so layer 2 when there is one."""
    return min(2, depth)


def translation_rows(spec: RunningStatsSpec) -> list[dict]:
    """The convention table: each tracked momentum in both conventions and its window."""
    return [
        {
            "PyTorch momentum (weight of the new batch)": momentum_text(pt),
            "Keras/TF/Flax momentum (weight of the old value)": momentum_text(round(1 - pt, 12)),
            "effective window ≈ 1/m steps": f"{effective_window(pt):.0f}",
            "share of the start value left after the run": f"{left:.2g}",
        }
        for pt, left in zip(spec.pytorch_momenta, start_value_left(spec))
    ]


def panels(
    part: Part,
    r: RunningStatsResult,
    final: bool,
    font: int,
    momenta_shown: list[int] | None = None,
    layer: int | None = None,
    channel: int = 1,
    population: str = next(iter(POPULATIONS)),
) -> list[Panel]:
    """momenta_shown: indices of the momenta drawn (None: all); layer and channel of chart A count from 1."""
    layer = first_layer(r.spec.depth) if layer is None else layer
    shown = momenta_shown
    out = (
        [diverged("network", r.diverged_at[0], "the charts stop there", "its loss or a BN statistic")]
        if r.diverged_at[0] is not None
        else []
    )
    out += [
        Chart("rs-a", figs.trajectories(r, layer - 1, channel - 1, shown, font), caption_a(r.spec)),
        Chart("rs-b", figs.errors(r, population, shown, font), caption_b(population)),
        Chart("rs-c", figs.accuracy(r, shown, font), caption_c(r.spec)),
    ]
    if final and r.precise is not None:
        out += [
            Text("Recalibrate (PreciseBN)", "subheader"),
            Chart("rs-precise", figs.precise_bn(r, shown, font), caption_precise(r)),
        ]
    return out


# --- presets and the PyTorch snippet ------------------------------------------------------------------------

PRESETS = {
    "Are PyTorch 0.1 and Keras 0.99 the same thing?": Preset(
        dict(convention="keras", momenta=(0.99, 0.9, 0.1), lr=0.05),
        "They are not. Keras' momentum is the weight of the *old* value, PyTorch's the weight of the *new* "
        "batch: PyTorch's default 0.1 is Keras 0.9, and Keras' default 0.99 is PyTorch 0.01, a ten times "
        "longer window that still lags after 100 steps. Keras 0.1 (a number copied verbatim from PyTorch "
        "code) is PyTorch 0.9: almost the last batch alone, the noisiest line.",
    ),
    "frozen network: only noise": Preset(
        dict(lr=0.0, momenta=(0.01, 0.1, 0.5), steps=800, pop_every=20),
        "With lr 0 the population does not move, so all that separates an estimate from it is noise and "
        "the start-up bias. After the first ~1/m steps the error settles to a floor that shrinks with the "
        "momentum (about sqrt(m/2) of the batch-to-batch spread): 0.01 beats 0.1 beats 0.5, and the "
        "cumulative average, which weighs every batch equally, ends lowest of all.",
    ),
    "tiny momentum lags": Preset(
        dict(init="std", init_std=0.01, momenta=(0.001, 0.01, 0.1), lr=0.05, bias_correction=True),
        "BN makes each layer blind to the scale of its weights, and SGD keeps growing these small ones, so "
        "the mean variance of each layer's BN inputs rises 7- to 12-fold during the run: the population moves. With "
        "bias correction on there is no start-up bias left, yet momentum 0.001 (window ~1,000 steps) and "
        "the cumulative average still describe an older network: their errors stay several times above "
        "momentum 0.1's.",
    ),
    "running var starts at 1": Preset(
        dict(init="std", init_std=0.01, momenta=(0.001, 0.01, 0.1), steps=400),
        "With init std 0.01 the true variance of each BN input starts below 0.01, but PyTorch starts "
        "running_var at 1. The start value fades as (1-m)^t: after 400 steps momentum 0.001 still keeps 67% "
        "of it, its variance is far too large, and eval mode shrinks every activation: eval accuracy "
        "collapses although training works. The cumulative average forgets the start at once; so does "
        "the bias-corrected EMA (switch it on).",
    ),
    "PreciseBN fixes it": Preset(
        dict(init="std", init_std=0.01, momenta=(0.001, 0.01), steps=300, recalibrate_batches=20),
        "The running stats of momentum 0.001 are still mostly their start values after 300 steps, so its "
        "eval accuracy is near chance while train mode works. PreciseBN throws the running stats away after "
        "training and recomputes them from N training batches with the final weights, in train mode: eval "
        "accuracy comes back to the train-mode level, whichever momentum was used. Try N = 1 to 5.",
    ),
}


def pytorch_snippet(spec: RunningStatsSpec) -> str:
    """A short PyTorch script: one BN layer, a shadow BatchNorm1d per momentum fed the same batches."""
    w = spec.width
    ms = ", ".join(momentum_text(m) for m in spec.pytorch_momenta) + (", None" if spec.cma else "")
    notes = (
        [f"# Keras momenta {', '.join(momentum_text(m) for m in spec.momenta)} are PyTorch's 1 - m"]
        if spec.convention == "keras"
        else []
    )
    if spec.var_estimator == "biased":
        notes.append("# nn.BatchNorm1d always keeps the unbiased variance; Keras 3 / Flax keep the biased one")
    if spec.bias_correction or spec.schedule == "ramp":
        notes.append("# the app's bias correction / momentum ramp have no nn.BatchNorm1d equivalent: not shown")
    zeros = (
        "\nfor s in shadows:\n    s.running_var.zero_()  # running init: zeros (the book)"
        if spec.running_init == "zeros"
        else ""
    )
    return (
        "\n".join(["import torch", "from torch import nn", "from sklearn.datasets import load_digits", *notes, ""])
        + f"""
torch.set_num_threads(1)  # a model this small runs fastest on one thread
torch.manual_seed({spec.seed})
{snippets.digits_lines(1350)}
lin, bn, head = nn.Linear(64, {w}), nn.BatchNorm1d({w}), nn.Sequential(nn.ReLU(), nn.Linear({w}, 10))
momenta = [{ms}]  # PyTorch convention: weight of the new batch; None = cumulative average
shadows = [nn.BatchNorm1d({w}, momentum=m, affine=False) for m in momenta]  # running stats only{zeros}
opt = torch.optim.SGD([*lin.parameters(), *bn.parameters(), *head.parameters()], lr={spec.lr:g})
for step in range({spec.steps}):
    idx = torch.randint(0, len(x_train), ({spec.batch_size},))
    h = lin(x_train[idx])
    for s in shadows:
        s(h.detach())  # train mode: folds this batch into s.running_mean / s.running_var
    loss = nn.functional.cross_entropy(head(bn(h)), y_train[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
with torch.no_grad():
    h = lin(x_train)  # one BN layer right after the input: its population is the whole training set
    pm, pv = h.mean(0), h.var(0)
    bn.eval()
    for m, s in zip(momenta, shadows):
        err_mean = ((s.running_mean - pm).abs() / pv.sqrt()).mean()
        err_var = (s.running_var / pv - 1).abs().mean()
        bn.running_mean.copy_(s.running_mean)
        bn.running_var.copy_(s.running_var)
        acc = (head(bn(lin(x_test))).argmax(1) == y_test).float().mean()
        print(f"momentum={{m}}: mean error {{err_mean:.4f}}, var error {{err_var:.4f}}, eval acc {{acc:.3f}}")
"""
    )
