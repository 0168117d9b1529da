"""Noisy BN (the experiment of Santurkar et al. 2018): after every BN layer, add noise whose mean and scale are
drawn afresh at every step, so that the distribution each layer sees keeps shifting; then compare with BN and
with no BN. If BN worked by keeping those distributions still, noisy BN would lose its benefit.

    python -m normviz why_bn --view noisy --noise-mean 1 --noise-scale 2 --json noisy.json
"""

from __future__ import annotations

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
    train_step,
)
from normviz.runs import Throttle
from normviz.stacked import StackedMLP, StackShape
from normviz.train import BatchSampler, accuracy

MODELS = ("BN", "noisy BN", "no BN")  # stack order: the two BN models first
NOISY = 1  # the row of the noisy model
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SMOOTH = 10  # steps over which the training accuracy is averaged
CLOSE, FAR = 0.05, 0.10  # test accuracy: "close to BN" within 5 points, "far above no BN" by 10 or more


def sample_noise(
    width: int, mean_max: float, scale_max: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's noise per unit: a shift ~ U(-mean_max, mean_max) and a scale ~ U(1, scale_max). (C,) each."""
    shift = (torch.rand(width, generator=generator) * 2 - 1) * mean_max
    scale = 1 + torch.rand(width, generator=generator) * (scale_max - 1)
    return shift, scale


class NoisyStackedMLP(StackedMLP):
    """A StackedMLP whose model NOISY has noise after each BN layer in training steps: unit c's output y becomes
    scale_c * y + shift_c, with (shift_c, scale_c) set by `set_noise` (new ones every step): its mean moves by
    shift_c and its std is multiplied by scale_c."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.noise: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # per layer (shift, scale), or off

    def set_noise(self, noise: list[tuple[torch.Tensor, torch.Tensor]] | None):
        self.noise = noise

    def _norm(self, layer, h, mode, eval_row, overwrite, relu=False):
        if mode != "train" or self.noise is None:
            return super()._norm(layer, h, mode, eval_row, overwrite, relu)
        out = super()._norm(layer, h, mode, eval_row, overwrite, False)  # (K, B, C); ReLU after the noise
        shift, scale = self.noise[layer]  # (C,) each
        factor, offset = torch.ones(self.k, 1, out.shape[2]), torch.zeros(self.k, 1, out.shape[2])
        factor[NOISY], offset[NOISY] = scale, shift
        out = torch.addcmul(offset, out, factor)  # (K, B, C)
        return out.clamp_min(0) if relu else out


@dataclass(frozen=True)
class NoisySpec(WhySpec):
    """BN, noisy BN and no BN: three MLPs from the same weights on the same batches."""

    noisy_lr: float = param(
        0.03,
        "SGD learning rate of the three networks (at the other experiments' 0.1 the no-BN network keeps up)",
        lo=1e-4,
        hi=10.0,
        log=True,
        label="Learning rate (SGD)",
    )
    noise_mean: float = param(
        1.0, "each unit's mean is shifted by U(-m, m), drawn afresh every step", lo=0.0, hi=5.0, label="Noise shift m"
    )
    noise_scale: float = param(
        2.0, "each unit's std is multiplied by U(1, s), drawn afresh every step", lo=1.0, hi=5.0, label="Noise scale s"
    )
    probe_every: int = param(5, "record the layers' input distributions every k steps", lo=1, hi=100)


@dataclass
class NoisyResult(WhyResult):
    spec: NoisySpec
    steps_done: int = 0
    done: bool = False
    loss: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # (S, K)
    batch_acc: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # (S, K) train mode
    probe_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T,)
    quantiles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 0, 5), np.float32))  # (T, K, L, Q)
    shift: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 0), np.float32))  # (S-1, K, L)
    test_acc: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # (K,) test set as one batch
    diverged_at: list = field(default_factory=lambda: [None] * 3)

    MODELS = MODELS

    def mean_shift(self) -> np.ndarray:
        """(K, L): how far each layer's input distribution moves per step, averaged over the steps."""
        return np.nanmean(self.shift, 0) if len(self.shift) else np.full((3, self.spec.depth), np.nan)

    def final_train_acc(self) -> np.ndarray:
        """(K,) train-mode accuracy on the training batches, averaged over the last SMOOTH steps."""
        return np.nanmean(self.batch_acc[-SMOOTH:], 0)

    def claims(self) -> dict[str, bool]:
        """The lesson's three claims, checked on this result."""
        shift, acc = self.mean_shift().mean(1), self.test_acc
        return {
            "moves more than without BN": bool(shift[NOISY] > shift[2]),
            "close to BN": bool(abs(acc[NOISY] - acc[0]) <= CLOSE),
            "far above no BN": bool(acc[NOISY] - acc[2] >= FAR),
        }

    def summary(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "steps_done": self.steps_done,
            "diverged_at": dict(zip(MODELS, self.diverged_at)),
            **{
                m: {
                    "test_acc": float(self.test_acc[k]),
                    "final_train_batch_acc": float(self.final_train_acc()[k]),
                    "shift_per_layer": self.mean_shift()[k].tolist(),
                }
                for k, m in enumerate(MODELS)
            },
        }


def layer_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, B, C) -> per-unit mean and std over the batch, (K, C) each."""
    std, mean = torch.std_mean(x, dim=1, unbiased=False)
    return mean, std


def run(spec: NoisySpec) -> Iterator[NoisyResult]:
    """Train the three networks; record each layer's input (after BN, noise and ReLU) on every training batch."""
    data = digits(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    noise_gen = torch.Generator().manual_seed(spec.seed + 1)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width)
    model = NoisyStackedMLP(shape, [1.0] * 3, n_bn=2, weight_init=INIT, generator=gen)
    opt = StackedSGD(model, torch.full((3,), spec.noisy_lr))
    sampler = BatchSampler(len(data.x_train), min(spec.batch_size, len(data.x_train)), gen)
    losses, accs, shifts, probe_steps, quants = [], [], [], [], []
    diverged_at, throttle = [None] * 3, Throttle()
    previous: list | None = None
    seen: list[torch.Tensor] = []  # this step's output of each hidden layer, (K, B, C)
    record = lambda layer, t: seen.append(t["act"].detach())  # noqa: E731

    def snapshot(step: int, done: bool) -> NoisyResult:
        acc = accuracy(model, data.x_test, data.y_test, "probe", chunk=len(data.x_test)).numpy()  # noise is off
        acc[[d is not None for d in diverged_at]] = np.nan
        return NoisyResult(
            spec,
            step,
            done,
            np.array(losses, np.float32).reshape(-1, 3),
            np.array(accs, np.float32).reshape(-1, 3),
            np.array(probe_steps, np.int64),
            np.array(quants, np.float32).reshape(-1, 3, spec.depth, len(QUANTILES)),
            np.array(shifts, np.float32).reshape(-1, 3, spec.depth),
            acc,
            list(diverged_at),
        )

    step = 0
    for step in range(1, spec.steps + 1):
        idx = sampler.next()
        xb, yb = data.x_train[idx], data.y_train[idx]
        model.set_noise(
            [sample_noise(spec.width, spec.noise_mean, spec.noise_scale, noise_gen) for _ in range(spec.depth)]
        )
        seen.clear()
        logits = model(xb, "train", record=record)
        losses.append(train_step(opt, logits, yb, diverged_at, step))
        accs.append((logits.detach().argmax(-1) == yb).float().mean(1).numpy())
        moments = [layer_moments(a) for a in seen]  # per layer: (K, C) mean and std
        if previous is not None:  # (K, L): mean over units of |Δ mean| + |Δ std| from the last step
            shifts.append(
                torch.stack(
                    [((m - pm).abs() + (s - ps).abs()).mean(1) for (m, s), (pm, ps) in zip(moments, previous)], 1
                ).numpy()
            )
        previous = moments
        if step % spec.probe_every == 0 or step == 1:
            flat = torch.stack([a.flatten(1) for a in seen], 1)  # (K, L, B*C)
            q = torch.quantile(flat, torch.tensor(QUANTILES), dim=-1)  # (Q, K, L)
            quants.append(q.permute(1, 2, 0).numpy())
            probe_steps.append(step)
        if all(d is not None for d in diverged_at):
            break
        if throttle.due():
            yield snapshot(step, False)
    model.set_noise(None)
    yield snapshot(step, True)
