"""Alternatives to BatchNorm: which values share one mean/variance under BN, LN, IN and GN (the axes diagram
of the GroupNorm paper, on a small real tensor), and the page spec that ties together the other views:
norm_zoo (same model, every norm), norm_cost (time), sync_bn (per-device batches) and rnn_norms (RNNs).

    python -m normviz alternatives --view axes --groups 2 --json axes.json
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from normviz.config import Spec, ViewsSpec, param
from normviz.experiments import norm_cost, norm_zoo, rnn_norms, sync_bn
from normviz.experiments.norm_zoo import digits
from normviz.layers import NORM_LABELS, group_count

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
    g = group_count(spec.channels, spec.groups)
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


def set_label(kind: str, groups: int) -> str:
    return f"{NORM_LABELS[kind]} (G = {groups})" if kind == "group" else NORM_LABELS[kind]
