"""Alternatives to BatchNorm: which values share one mean/variance under BN, LN, IN and GN (the axes diagram
of the GroupNorm paper, on a small real tensor), and the page spec that ties together the other views:
norm_zoo (same model, every norm), norm_cost (time), sync_bn (per-device batches) and rnn_norms (RNNs).

    python -m normviz norm-axes --groups 2 --json axes.json
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from normviz import snippets
from normviz.commands import Command
from normviz.config import DataSpec, Preset, Spec, ViewsSpec, param
from normviz.experiments import norm_cost, norm_zoo, rnn_norms, sync_bn
from normviz.experiments.norm_zoo import digits, effective_groups
from normviz.layers import NORM_LABELS

AXES_KINDS = ("batch", "layer", "instance", "group", "rms")
EPS = 1e-5
SETS_HELP = {
    "batch": "one mean/var per channel, over the batch and all positions",
    "layer": "one mean/var per sample, over all its channels and positions",
    "instance": "one mean/var per sample and channel, over its positions",
    "group": "one mean/var per sample and group of channels, over those channels' positions",
    "rms": "one mean square per sample, over all its channels and positions (LayerNorm's set); no mean subtracted",
}


@dataclass(frozen=True)
class AxesSpec(Spec):
    """The small real tensor: a few digits through one random 3x3 conv, average-pooled to side x side."""

    groups: int = norm_zoo.groups_param()
    samples: int = param(4, "N: images in the small tensor", lo=2, hi=8)
    channels: int = param(8, "C: conv channels in the small tensor", lo=2, hi=16)
    side: int = param(2, "H = W of the small tensor (the conv output average-pooled)", lo=1, hi=4)


def stat_sets(kind: str, shape: tuple[int, int, int], groups: int = 1) -> np.ndarray:
    """(N, C, HW) ints: the index of the mean/var each value of an (N, C, HW) tensor is normalised with."""
    n_idx, c_idx, _ = np.indices(shape)
    n, c, _ = shape
    if kind == "batch":
        return c_idx
    if kind in ("layer", "rms"):
        return n_idx
    if kind == "instance":
        return n_idx * c + c_idx
    if kind == "group":
        if c % groups:
            raise ValueError(f"{groups} groups do not divide {c} channels")
        return n_idx * groups + c_idx // (c // groups)
    raise ValueError(f"unknown norm kind {kind!r}; valid: {AXES_KINDS}")


def set_stats(x: np.ndarray, sets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per set: (mean, biased var, count), each (K,), for x and set indices of one shape."""
    flat, ids = x.ravel().astype(np.float64), sets.ravel()
    count = np.bincount(ids)
    mean = np.bincount(ids, flat) / count
    var = np.bincount(ids, (flat - mean[ids]) ** 2) / count
    return mean, var, count


def normalize_by_sets(x: np.ndarray, sets: np.ndarray, eps: float = EPS) -> np.ndarray:
    mean, var, _ = set_stats(x, sets)
    return ((x - mean[sets]) / np.sqrt(var[sets] + eps)).astype(np.float32)


def rms_by_sets(x: np.ndarray, sets: np.ndarray, eps: float = EPS) -> np.ndarray:
    """RMSNorm: each value divided by the root mean square of its set (the mean is kept)."""
    mean, var, _ = set_stats(x, sets)
    return (x / np.sqrt(var[sets] + mean[sets] ** 2 + eps)).astype(np.float32)


def describe_set(kind: str, k: int, shape: tuple[int, int, int], groups: int) -> str:
    """In words, which values set k holds."""
    n, c, _ = shape
    if kind == "batch":
        return f"channel {k}, all {n} samples"
    if kind in ("layer", "rms"):
        return f"sample {k}, all {c} channels"
    if kind == "instance":
        return f"sample {k // c}, channel {k % c}"
    per = c // groups
    g = k % groups
    return f"sample {k // groups}, group {g} (channels {g * per}–{g * per + per - 1})"


def small_tensor(spec: AxesSpec) -> np.ndarray:
    """(N, C, side*side) float32: real pre-norm activations (a seeded random conv of the first digits)."""
    data = digits(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    conv = nn.Conv2d(1, spec.channels, 3, padding=1)
    with torch.no_grad():
        conv.weight.normal_(0.0, (2.0 / 9) ** 0.5, generator=gen)
        conv.bias.normal_(0.0, 0.5, generator=gen)  # channels with different means, as real layers have
        h = conv(data.x_train[: spec.samples].reshape(-1, 1, 8, 8))
        h = nn.functional.adaptive_avg_pool2d(h, spec.side)  # (N, C, side, side)
    return h.reshape(spec.samples, spec.channels, -1).numpy().astype(np.float32)


@dataclass
class AxesResult:
    spec: AxesSpec
    x: np.ndarray  # (N, C, HW) the small real tensor
    groups: int  # GroupNorm's group count actually used
    sets: dict = field(default_factory=dict)  # kind -> (N, C, HW) set index of every value
    x_hat: dict = field(default_factory=dict)  # kind -> (N, C, HW) normalised with its set's mean/var
    done: bool = True

    @property
    def progress(self) -> float:
        return 1.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape)

    def table(self, kind: str) -> list[dict]:
        """One row per mean/var: which values, how many, mean and variance, and x_hat's mean and std there."""
        mean, var, count = set_stats(self.x, self.sets[kind])
        hat_mean, hat_var, _ = set_stats(self.x_hat[kind], self.sets[kind])
        return [
            {
                "set": k,
                "values": describe_set(kind, k, self.shape, self.groups),
                "count": int(count[k]),
                "mean": round(float(mean[k]), 4),
                "variance": round(float(var[k]), 4),
                "mean after": round(float(hat_mean[k]), 4) + 0.0,
                "std after": round(float(np.sqrt(hat_var[k])), 4),
            }
            for k in range(len(mean))
        ]

    def summary(self) -> dict:
        out = {
            "spec": self.spec.to_dict(),
            "shape": list(self.shape),
            "groups_used": self.groups,
            "x": self.x.round(6).tolist(),
        }
        for kind in AXES_KINDS:
            mean, var, count = set_stats(self.x, self.sets[kind])
            out[kind] = {
                "n_sets": len(mean),
                "values_per_set": int(count[0]),
                "mean": mean.tolist(),
                "var": var.tolist(),
            }
        return out


def run(spec: AxesSpec) -> Iterator[AxesResult]:
    """Nothing to train: one final result."""
    x = small_tensor(spec)
    g = effective_groups(spec.channels, spec.groups)
    sets = {k: stat_sets(k, x.shape, g) for k in AXES_KINDS}
    normalized = {k: (rms_by_sets if k == "rms" else normalize_by_sets)(x, s) for k, s in sets.items()}
    yield AxesResult(spec, x, g, sets, normalized)


# --- the page: one spec for every view --------------------------------------------------------------------

VIEWS = ("axes", "every-norm", "cost", "sync-bn", "rnn")
VIEW_TITLES = {
    "axes": "Which values share one mean and variance",
    "every-norm": "Same model, every norm",
    "cost": "What a norm costs",
    "sync-bn": "SyncBN: per-device batches",
    "rnn": "Norms in a recurrent net",
}
VIEW_SPECS = {
    "axes": AxesSpec,
    "every-norm": norm_zoo.ZooSpec,
    "cost": norm_cost.CostSpec,
    "sync-bn": sync_bn.SyncBNSpec,
    "rnn": rnn_norms.RNNSpec,
}
VIEW_RUNS = {
    "axes": run,
    "every-norm": norm_zoo.run,
    "cost": norm_cost.run,
    "sync-bn": sync_bn.run,
    "rnn": rnn_norms.run,
}
PAGE_FIELDS = {  # the sidebar, in order; each view reads only its own
    "axes": ["groups"],
    "every-norm": ["model", "batch_size", "steps", "lr", "groups", "seeds"],
    "cost": ["model", "cost_batch_sizes", "groups"],
    "sync-bn": ["model", "workers", "sub_batches", "steps", "lr"],
    "rnn": ["batch_size", "steps", "lr"],
}


@dataclass(frozen=True)
class AlternativesSpec(
    ViewsSpec, AxesSpec, norm_zoo.ZooSpec, norm_cost.CostSpec, sync_bn.SyncBNSpec, rnn_norms.RNNSpec
):
    """Every setting of the Alternatives page; `view` picks the experiment, `sub()` gives its own spec."""

    view: str = param(
        "axes",
        "what to show: " + "; ".join(f"{v}: {t}" for v, t in VIEW_TITLES.items()),
        choices=VIEWS,
        choice_labels=VIEW_TITLES,
        label="View",
    )

    VIEW_SPECS = VIEW_SPECS
    VIEW_FIELDS = PAGE_FIELDS


def _view_presets() -> dict[str, Preset]:
    out = {}
    for view, module in (("every-norm", norm_zoo), ("sync-bn", sync_bn), ("rnn", rnn_norms)):
        for name, p in module.PRESETS.items():
            out[name] = Preset(p.changes | {"view": view}, p.notice)
    return out


PRESETS = {
    "GroupNorm with G=1 is LayerNorm": Preset(
        {"view": "axes", "groups": 1},
        "One group holds every channel of a sample: GroupNorm's shaded block is LayerNorm's, and the statistics "
        "below are the same numbers.",
    ),
    "GroupNorm with G=C is InstanceNorm": Preset(
        {"view": "axes", "groups": 8},
        "One channel per group: each sample-and-channel gets its own mean and variance, exactly InstanceNorm.",
    ),
} | _view_presets()


def pytorch_snippet(spec: Spec) -> str:
    """The snippet of the view `spec` belongs to (an AlternativesSpec: its current view)."""
    if isinstance(spec, AlternativesSpec):
        spec = spec.sub()
    other = {
        norm_zoo.ZooSpec: norm_zoo,
        norm_cost.CostSpec: norm_cost,
        sync_bn.SyncBNSpec: sync_bn,
        rnn_norms.RNNSpec: rnn_norms,
    }.get(type(spec))
    if other is not None:
        return other.pytorch_snippet(spec)
    g = effective_groups(spec.channels, spec.groups)
    return f"""import torch
from torch import nn

torch.manual_seed({spec.seed})
N, C, H, W, G = {spec.samples}, {spec.channels}, {spec.side}, {spec.side}, {g}
x = torch.randn(N, C, H, W) * 2 + 1
means = {{  # the axes each norm averages over
    'BatchNorm': x.mean(dim=(0, 2, 3)),  # (C,): one per channel
    'LayerNorm': x.mean(dim=(1, 2, 3)),  # (N,): one per sample
    'InstanceNorm': x.mean(dim=(2, 3)),  # (N, C)
    'GroupNorm': x.reshape(N, G, -1).mean(-1),  # (N, G)
}}
for name, m in means.items():
    print(f"{{name:12s}} {{tuple(m.shape)}} means, each over {{x.numel() // m.numel()}} values")
g = x.reshape(N, G, -1)
ours = ((g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + 1e-5)).reshape(x.shape)
print("GroupNorm by hand == F.group_norm:", torch.allclose(ours, nn.functional.group_norm(x, G), atol=1e-5))
print("G=1 is LayerNorm:", torch.allclose(nn.functional.group_norm(x, 1),
      nn.functional.layer_norm(x, x.shape[1:]), atol=1e-5))
print("G=C is InstanceNorm:", torch.allclose(nn.functional.group_norm(x, C),
      nn.functional.instance_norm(x), atol=1e-5))
"""


def set_label(kind: str, groups: int) -> str:
    return f"{NORM_LABELS[kind]} (G = {groups})" if kind == "group" else NORM_LABELS[kind]


COMMAND = Command(
    "norm-axes",
    "which values of a small real (N, C, H*W) tensor share one mean/var under BN, LN, IN "
    "and GN, with the per-set statistics",
    AxesSpec,
    run,
    AxesResult.summary,
)


# --- what the page says around each view (kept here so that the page stays a table of contents) -----------

CAPTIONS = {
    "axes": "Each cube is one activation tensor of N samples x C channels x H·W positions. The shaded block is "
    "the set of values that one mean and one variance are computed over; grey lines border the other "
    "sets. Drag a cube to turn it.",
    "tensor": "The same kind of tensor with real numbers: rows are samples, columns are channels (each with its "
    "H·W positions). Each coloured box is one set; hover a cell for its value and its set's mean and "
    "variance. Below: after normalising, every box has mean 0 and variance 1 (RMSNorm: mean square 1, "
    "the sign and relative size of its mean kept).",
    "every-norm": "Every norm starts from the same initial weights (per seed) and sees the same batches; Adam. "
    f"Test accuracy ({snippets.split_sizes(DataSpec(dataset='digits'))[0]} held-out digits) in eval mode: "
    "BatchNorm and Batch Renorm use their running statistics (PyTorch momentum "
    f"{norm_zoo.RENORM_KWARGS['momentum']:g}), the others need none. " + norm_zoo.RENORM_VS_PAPER,
    "cost": "Grey: the same training step (forward, backward, Adam) with the norm layers removed (ablation). "
    "Coloured: the extra time the norm layers take; the label is their share of the step. Solid: our "
    "written-out layers; hatched: torch's built-in modules. Fastest of 12 interleaved rounds, CPU time "
    "of one thread.",
    "sync-bn": "Every point trains the same model on global batches of W·b samples. Per-worker BN normalises each "
    "worker's b samples alone (its running statistics are worker 0's, as DDP broadcasts them); SyncBN "
    "combines every worker's mean and variance first. Middle and right: the first BN layer's input, batches "
    "drawn at random from the training set; in the CNN the H·W positions of one image are correlated, "
    "so the error is larger than the dotted 1/√(values) line.",
    "rnn": "RowRNN reads one image row per time step (8 steps), h_t = tanh(norm(W_x x_t + W_h h_{t-1})), and "
    "classifies the last state. Same initial weights and batches for the three.",
    "rnn-stats": "BatchNorm's running mean and variance for each time step (PyTorch momentum 0.1), after training.",
    "rnn-long": "Longer test sequences: the image read 2 or 3 times. Right, in eval mode on the test set: at each "
    "step t of a 24-step sequence, the std of BN's input (W_x x_t + W_h h_{t-1}) against the running "
    "std it divides by there, its own step's up to t = 7 and step 7's after that.",
}

NOTICE = {
    "axes": "- **BatchNorm**'s block runs across the batch: a sample's output depends on the other samples, "
    "and a batch is needed to compute it, so eval mode switches to running averages.\n"
    "- **LayerNorm, InstanceNorm and GroupNorm** stay inside one sample: they compute the same thing for "
    "any batch size, in training and in eval mode.\n"
    "- **GroupNorm** sits between them: G = 1 is LayerNorm, G = C is InstanceNorm (see the presets).",
    "every-norm": "- In the CNN at the default settings, **BatchNorm** and **GroupNorm + weight standardisation** "
    "learn fastest; plain GroupNorm and LayerNorm are not much better than no norm here. Weight "
    "standardisation is what brings GroupNorm up to BatchNorm.\n"
    "- **InstanceNorm** erases each image's per-channel mean and contrast: good for style transfer, "
    "poor for telling digits apart.\n"
    "- **Small batches** (preset *Batch of 2*): BatchNorm's statistics become noise and its running "
    "averages stop matching them; LayerNorm and GroupNorm do not depend on the batch size.\n"
    "- Differences of a few points can be luck: train several seeds per norm (preset *Three seeds*) "
    "before believing them.",
    "sync-bn": "- Per-worker BN with b samples estimates the mean with an error of about 1/√b of a standard "
    "deviation (MLP); SyncBN averages W·b values, √W times less noisy.\n"
    "- With **b = 1** a per-worker BatchNorm1d refuses to train (one value per channel). A per-worker "
    "BatchNorm2d runs, but normalises every image by its own statistics in training (InstanceNorm in "
    "disguise) and by running averages in eval mode, which do not match: the CNN learns nothing useful.\n"
    "- SyncBN is plain BN on the whole global batch (the tests check it against BatchNorm on that batch). "
    "Its price is communication: PyTorch's SyncBatchNorm gathers every worker's per-channel (mean, 1/σ, count) "
    "in the forward pass and sums two per-channel sums (of dy and of dy·(x − μ)) over the workers in the "
    "backward pass: two collectives per BN layer and step.",
    "rnn": "- Per-step BN needs one mean and variance **per time step**: step 0 (no previous state) differs from "
    "the later steps.\n"
    "- At step 8 and later it has **no statistics**: RowRNN refuses the sequence, unless told to reuse "
    "step 7's, which only works while later steps look like step 7.\n"
    "- **LayerNorm** normalises each sample over its own hidden units at every step: one layer for all "
    "steps, any length, any batch size.",
}

FORMULAS = {
    "axes": [
        r"\mu_S=\frac{1}{|S|}\sum_{i\in S}x_i,\qquad \sigma_S^2=\frac{1}{|S|}\sum_{i\in S}(x_i-\mu_S)^2",
        r"\hat x_i=\frac{x_i-\mu_{S(i)}}{\sqrt{\sigma_{S(i)}^2+\epsilon}},\qquad y_i=\gamma_c\hat x_i+\beta_c",
        r"S_{\text{BN}}=\{(\cdot,c,\cdot)\},\quad S_{\text{LN}}=\{(n,\cdot,\cdot)\},\quad "
        r"S_{\text{IN}}=\{(n,c,\cdot)\},\quad S_{\text{GN}}=\{(n,c,\cdot): \lfloor c/(C/G)\rfloor=g\}",
    ],
    "every-norm": [
        r"\text{BN: } \mu_c=\operatorname{mean}_{n,h,w}x_{nchw}\qquad "
        r"\text{GN: } \mu_{ng}=\operatorname{mean}_{c\in g,h,w}x_{nchw}",
        r"\text{WS: } \hat W_{o}=\frac{W_{o}-\operatorname{mean}(W_{o})}{\operatorname{std}(W_{o})}"
        r"\qquad \text{BRN: } \hat x=\frac{x-\mu_B}{\sigma_B}\,r+d,\ "
        r"r=\operatorname{clip}\Big(\frac{\sigma_B}{\sigma}\Big),\ d=\operatorname{clip}\Big("
        r"\frac{\mu_B-\mu}{\sigma}\Big)",
    ],
    "cost": [
        r"\text{share in the norm layers}=1-\frac{t(\text{step without norm layers})}"
        r"{t(\text{step with them})}"
    ],
    "sync-bn": [
        r"\text{all-gather of each worker's } (\mu_w,\ \sigma_w^2,\ n_w),\qquad "
        r"n_w=b\ \text{(MLP)},\quad n_w=b\,H\,W\ \text{(CNN)}",
        r"\mu=\frac{\sum_w n_w\,\mu_w}{\sum_w n_w},\qquad "
        r"\sigma^2=\frac{\sum_w n_w\big(\sigma_w^2+(\mu_w-\mu)^2\big)}{\sum_w n_w}"
        r"\quad\text{(within plus between workers)}",
    ],
    "rnn": [
        r"\text{BN: } h_t=\tanh\big(\mathrm{BN}_t(W_x x_t+W_h h_{t-1})\big)\ \text{(statistics per step } t)"
        r"\qquad \text{LN: } h_t=\tanh\big(\mathrm{LN}(W_x x_t+W_h h_{t-1})\big)"
    ],
}
