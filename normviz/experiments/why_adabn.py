"""Domain shift and re-estimated statistics (AdaBN: Li et al. 2016, "Revisiting Batch Normalization for Practical
Domain Adaptation"). Train on the digits, test on shifted digits (brighter, lower contrast, inverted or moved by a
pixel), and compare: eval mode with the training running statistics; the same network after re-estimating every
BN layer's statistics on n unlabelled shifted images (AdaBN); and train-mode statistics of each test batch.

    python -m normviz why_bn --view adabn --shift invert --adapt-samples 32 --json adabn.json
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from normviz.config import param
from normviz.experiments.why_common import (
    INIT,
    StackedSGD,
    WhyResult,
    WhySpec,
    digits,
    lr_param,
    train_step,
)
from normviz.runs import Throttle
from normviz.stacked import StackedMLP, StackShape
from normviz.train import BatchSampler, accuracy

MODELS = ("BN", "no BN")
SHIFTS = ("brightness", "contrast", "invert", "translate")
SAMPLE_GRID = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
DRAWS = 5  # random sets of unlabelled images per sample count
CLOSE = 0.01  # "enough samples": AdaBN within one point of its accuracy with the whole pool
HELPS = 0.05  # AdaBN "helps" when it gains at least 5 points over the training statistics


@dataclass(frozen=True)
class AdaBNSpec(WhySpec):
    """A BN and a no-BN MLP trained on clean digits (pixels in [0, 1]), tested on shifted ones."""

    lr: float = lr_param()
    shift: str = param("contrast", "how the test images are changed", choices=SHIFTS, label="Shift")
    brightness: float = param(0.5, "brightness: added to every pixel (pixels are in [0, 1])", lo=-1.0, hi=1.0)
    contrast: float = param(0.3, "contrast: pixels become 0.5 + c·(x - 0.5)", lo=0.0, hi=3.0, label="Contrast factor c")
    pixels: int = param(1, "translate: pixels to move the image right (zeros fill in)", lo=1, hi=3)
    adapt_samples: int = param(
        64,
        "AdaBN: unlabelled shifted images to re-estimate the statistics with",
        lo=2,
        hi=1024,
        log=True,
        label="AdaBN samples",
    )
    test_batch: int = param(50, "train-mode statistics: test images per batch", lo=2, hi=449, label="Test batch")


def apply_shift(x: torch.Tensor, spec: AdaBNSpec, side: int = 8) -> torch.Tensor:
    """(N, side*side) images with pixels in [0, 1] -> the shifted images."""
    if spec.shift == "brightness":
        return x + spec.brightness
    if spec.shift == "contrast":
        return 0.5 + spec.contrast * (x - 0.5)
    if spec.shift == "invert":
        return 1.0 - x
    img = x.reshape(-1, side, side)
    moved = torch.zeros_like(img)
    moved[:, :, spec.pixels :] = img[:, :, : side - spec.pixels]
    return moved.reshape(x.shape)


@torch.no_grad()
def adapt(model: StackedMLP, x: torch.Tensor) -> StackedMLP:
    """AdaBN: a copy of `model` whose BN layers' running statistics are those of the batch `x`, layer by layer
    with the layers before already adapted (one pass with batch statistics); variance unbiased, as torch keeps it."""
    adapted = copy.deepcopy(model)
    seen: list[torch.Tensor] = []
    adapted(x, "probe", record=lambda layer, t: seen.append(t["linear"][: model.n_bn]))  # (n_bn, B, C) per layer
    n = len(x)
    for stats, h in zip(adapted.stats, seen):
        var, mean = torch.var_mean(h, dim=1, unbiased=False)  # (n_bn, C)
        stats.mean[:] = mean
        stats.var[:] = var * n / (n - 1)
    return adapted


@dataclass
class AdaBNResult(WhyResult):
    spec: AdaBNSpec
    steps_done: int = 0
    done: bool = False
    loss: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # (S, K)
    clean_acc: np.ndarray = field(default_factory=lambda: np.full(2, np.nan, np.float32))  # (K,) eval, no shift
    shifted_acc: np.ndarray = field(default_factory=lambda: np.full(2, np.nan, np.float32))  # (K,) eval, shift
    batch_stats_acc: float = float("nan")  # BN with each shifted test batch's own statistics
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (G,) AdaBN sample counts
    adabn_acc: np.ndarray = field(default_factory=lambda: np.zeros((0, DRAWS), np.float32))  # (G, D)
    pool_acc: float = float("nan")  # AdaBN with the whole pool of shifted training images
    pool_size: int = 0
    diverged_at: list = field(default_factory=lambda: [None, None])

    MODELS = MODELS

    def adabn_at(self, n: int) -> float:
        """Mean AdaBN accuracy over the draws with n samples."""
        return float(self.adabn_acc[list(self.samples).index(n)].mean())

    def samples_needed(self) -> int | None:
        """The fewest samples whose mean AdaBN accuracy is within CLOSE of the whole pool's."""
        ok = self.adabn_acc.mean(1) >= self.pool_acc - CLOSE
        return int(self.samples[np.argmax(ok)]) if ok.any() else None

    def adabn_helps(self) -> bool:
        """AdaBN on the whole pool beats the training statistics by HELPS or more."""
        return self.pool_acc >= self.shifted_acc[0] + HELPS

    def summary(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "steps_done": self.steps_done,
            "clean_acc": dict(zip(MODELS, self.clean_acc.tolist())),
            "shifted_eval_acc": dict(zip(MODELS, self.shifted_acc.tolist())),
            "batch_stats_acc": self.batch_stats_acc,
            "adabn": {
                "samples": self.samples.tolist(),
                "acc_mean": self.adabn_acc.mean(1).tolist(),
                "acc_min": self.adabn_acc.min(1).tolist() if len(self.adabn_acc) else [],
                "acc_max": self.adabn_acc.max(1).tolist() if len(self.adabn_acc) else [],
                "pool_size": self.pool_size,
                "pool_acc": self.pool_acc,
                "samples_needed": self.samples_needed() if len(self.adabn_acc) else None,
            },
            "diverged_at": dict(zip(MODELS, self.diverged_at)),
        }


def run(spec: AdaBNSpec) -> Iterator[AdaBNResult]:
    """Train the pair on clean digits, then test under the shift with the three ways of getting BN's statistics."""
    data = digits(spec.seed, scaling="unit")
    gen = torch.Generator().manual_seed(spec.seed)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width)
    model = StackedMLP(shape, [1.0, 1.0], n_bn=1, weight_init=INIT, generator=gen)
    opt = StackedSGD(model, torch.full((2,), spec.lr))
    sampler = BatchSampler(len(data.x_train), min(spec.batch_size, len(data.x_train)), gen)
    losses, diverged_at, throttle = [], [None, None], Throttle()
    step = 0
    for step in range(1, spec.steps + 1):
        idx = sampler.next()
        losses.append(train_step(opt, model(data.x_train[idx]), data.y_train[idx], diverged_at, step))
        if all(d is not None for d in diverged_at):
            break
        if throttle.due():
            yield AdaBNResult(spec, step, False, np.array(losses, np.float32), diverged_at=list(diverged_at))

    x_test, y_test = apply_shift(data.x_test, spec), data.y_test
    pool = apply_shift(data.x_train, spec)  # unlabelled shifted images, none of them in the test set
    clean = accuracy(model, data.x_test, y_test).numpy()
    shifted = accuracy(model, x_test, y_test).numpy()
    batch_stats = float(accuracy(model, x_test, y_test, "probe", chunk=spec.test_batch)[0])
    draw_gen = torch.Generator().manual_seed(spec.seed + 1)
    grid = sorted({n for n in SAMPLE_GRID if n <= len(pool)} | {min(spec.adapt_samples, len(pool))})
    adabn = [
        [
            float(accuracy(adapt(model, pool[torch.randperm(len(pool), generator=draw_gen)[:n]]), x_test, y_test)[0])
            for _ in range(DRAWS)
        ]
        for n in grid
    ]
    pool_acc = float(accuracy(adapt(model, pool), x_test, y_test)[0])
    for k, d in enumerate(diverged_at):
        if d is not None:
            clean[k] = shifted[k] = np.nan
    yield AdaBNResult(
        spec,
        step,
        True,
        np.array(losses, np.float32),
        clean,
        shifted,
        batch_stats,
        np.array(grid, np.int64),
        np.array(adabn, np.float32),
        pool_acc,
        len(pool),
        list(diverged_at),
    )
