"""The usable learning-rate range: BN and no-BN MLPs at a log grid of learning rates, all in one stacked run.

python -m normviz why_bn --view lr-range --rates 12 --lr-min 0.001 --lr-max 10 --json lr.json
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from normviz.config import SpecError, param
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

MODELS = ("BN", "no BN")  # stack order: the BN models (one per rate) come first
TRAINS_AT = 0.9  # a rate "trains" when the final test accuracy reaches this


@dataclass(frozen=True)
class LrRangeSpec(WhySpec):
    """One MLP shape, trained with and without BN at each rate of a log grid (plain SGD, Xavier init)."""

    rates: int = param(12, "learning rates on a log grid from lr_min to lr_max", lo=3, hi=24, label="Learning rates")
    lr_min: float = param(1e-3, "smallest learning rate of the grid", lo=1e-5, hi=1.0, log=True, label="Smallest rate")
    lr_max: float = param(10.0, "largest learning rate of the grid", lo=1e-3, hi=100.0, log=True, label="Largest rate")

    def validate(self):
        super().validate()
        if self.lr_min >= self.lr_max:
            raise SpecError(f"lr_min ({self.lr_min:g}) must be smaller than lr_max ({self.lr_max:g})")

    def grid(self) -> np.ndarray:
        return np.logspace(np.log10(self.lr_min), np.log10(self.lr_max), self.rates)


@dataclass
class LrRangeResult(WhyResult):
    spec: LrRangeSpec
    lrs: np.ndarray  # (R,)
    steps_done: int = 0
    done: bool = False
    loss: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (S, 2R), BN rates first
    test_acc: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (2R,) eval mode, nan: diverged
    diverged_at: list = field(default_factory=list)  # (2R,) step or None

    MODELS = MODELS

    def _rows(self, model: str) -> slice:
        r = len(self.lrs)
        return slice(0, r) if model == "BN" else slice(r, 2 * r)

    def acc(self, model: str) -> np.ndarray:
        """(R,) final test accuracy at each rate; nan where the model diverged."""
        return self.test_acc[self._rows(model)]

    def diverged(self, model: str) -> list:
        return self.diverged_at[self._rows(model)]

    def trains(self, model: str) -> np.ndarray:
        """(R,) bool: the rate reaches TRAINS_AT test accuracy."""
        return np.nan_to_num(self.acc(model), nan=0.0) >= TRAINS_AT

    def usable(self, model: str) -> tuple[float, float] | None:
        """(smallest, largest) rate that trains, or None."""
        ok = self.lrs[self.trains(model)]
        return (float(ok.min()), float(ok.max())) if len(ok) else None

    def decades(self, model: str) -> float:
        """Width of the usable range in decades of learning rate (0 for a single rate)."""
        span = self.usable(model)
        return 0.0 if span is None else float(np.log10(span[1] / span[0]))

    def best_lr(self, model: str) -> float:
        """The rate with the highest final test accuracy (the largest of tied rates)."""
        acc = np.nan_to_num(self.acc(model), nan=-1.0)
        return float(self.lrs[np.flatnonzero(acc == acc.max())[-1]])

    def summary(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "steps_done": self.steps_done,
            "lrs": self.lrs.tolist(),
            "trains_at": TRAINS_AT,
            **{
                m: {
                    "test_acc": self.acc(m).tolist(),
                    "diverged_at": self.diverged(m),
                    "usable_range": self.usable(m),
                    "decades": self.decades(m),
                    "best_lr": self.best_lr(m),
                }
                for m in MODELS
            },
        }


def run(spec: LrRangeSpec) -> Iterator[LrRangeResult]:
    """Train all 2R networks on the same batches; yields growing partial results and the final one."""
    data = digits(spec.seed)
    lrs = spec.grid()
    r = len(lrs)
    gen = torch.Generator().manual_seed(spec.seed)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width)
    model = StackedMLP(shape, [1.0] * (2 * r), n_bn=r, weight_init=INIT, generator=gen)  # one draw for all
    opt = StackedSGD(model, torch.tensor(np.concatenate([lrs, lrs]), dtype=torch.float32))
    sampler = BatchSampler(len(data.x_train), min(spec.batch_size, len(data.x_train)), gen)
    losses, diverged_at, throttle = [], [None] * (2 * r), Throttle()

    def snapshot(step: int, done: bool) -> LrRangeResult:
        acc = accuracy(model, data.x_test, data.y_test).numpy()
        acc[[d is not None for d in diverged_at]] = np.nan
        loss = np.array(losses, np.float32).reshape(-1, 2 * r)
        return LrRangeResult(spec, lrs, step, done, loss, acc, list(diverged_at))

    for step in range(1, spec.steps + 1):
        idx = sampler.next()
        losses.append(train_step(opt, model(data.x_train[idx]), data.y_train[idx], diverged_at, step))  # (2R,)
        if all(d is not None for d in diverged_at):
            break
        if throttle.due():
            yield snapshot(step, False)
    yield snapshot(step, True)
