"""The DLfS weight-init experiment: 16 init stds, each with a BN and a no-BN MLP, as one stacked run.

    python -m normviz init-sweep --epochs 20 --scales 16 --running-init zeros --json sweep.json
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from normviz.cli import Command
from normviz.config import ACTIVATIONS, DataSpec, SpecError, param
from normviz.data import load_checked
from normviz.runs import Throttle
from normviz.stacked import StackedMLP, StackShape
from normviz.train import StackedTrainer, accuracy

RUNNING_INIT_HELP = ("running stats start at 0 (the book: mean 0, var 0, biased variance) or as in PyTorch "
                     "(mean 0, var 1, unbiased variance)")


@dataclass(frozen=True)
class InitSweepSpec(DataSpec):
    """The book's set-up: 1,000 digits for training, 64-100x5-10 ReLU MLP, SGD lr 0.01, batch 100."""

    n_samples: int = param(1250, "samples in all; 80% (1,000) train", lo=20, hi=70_000)
    test_fraction: float = param(0.2, "share of samples held out", lo=0.05, hi=0.9)
    scaling: str = param("unit", "input scaling (the book divides pixels by their maximum)",
                         choices=("standardize", "unit", "none"))
    scales: int = param(16, "number of init stds, log-spaced from scale_max down to scale_min", lo=2, hi=32)
    scale_max: float = param(1.0, "largest init std", lo=1e-4, hi=10.0, log=True)
    scale_min: float = param(1e-4, "smallest init std", lo=1e-5, hi=10.0, log=True)
    epochs: int = param(20, "training epochs", lo=1, hi=100)
    depth: int = param(5, "hidden layers", lo=1, hi=10)
    width: int = param(100, "units per hidden layer", lo=4, hi=512)
    activation: str = param("relu", "activation function", choices=ACTIVATIONS)
    lr: float = param(0.01, "SGD learning rate", lo=1e-5, hi=10.0, log=True)
    batch_size: int = param(100, "samples per step", lo=2, hi=1024)
    running_init: str = param("zeros", RUNNING_INIT_HELP, choices=("zeros", "pytorch"))

    def validate(self):
        super().validate()
        if self.scale_min >= self.scale_max:
            raise SpecError(f"scale_min ({self.scale_min:g}) must be smaller than scale_max ({self.scale_max:g})")

    def init_stds(self) -> list[float]:
        """Largest first, as in the book: logspace(log10(max), log10(min), scales)."""
        return np.logspace(np.log10(self.scale_max), np.log10(self.scale_min), self.scales).tolist()


@dataclass
class InitSweepResult:
    spec: InitSweepSpec
    scales: list[float]
    bn_acc: np.ndarray  # (S, epochs_done) train accuracy in eval mode after each epoch
    plain_acc: np.ndarray
    diverged_at: list = field(default_factory=list)  # per model (BN scales first), step or None
    done: bool = False

    @property
    def progress(self) -> float:
        return self.bn_acc.shape[1] / self.spec.epochs

    def summary(self) -> dict:
        return {"scales": self.scales, "epochs": self.spec.epochs, "running_init": self.spec.running_init,
                "bn": {"train_acc": self.bn_acc.tolist()}, "plain": {"train_acc": self.plain_acc.tolist()}}


def run(spec: InitSweepSpec) -> Iterator[InitSweepResult]:
    data = load_checked(spec)
    scales = spec.init_stds()
    gen = torch.Generator().manual_seed(spec.seed)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width, spec.activation)
    book = spec.running_init == "zeros"
    model = StackedMLP(shape, scales + scales, n_bn=len(scales), generator=gen, momenta=(0.1,),
                       init="zeros" if book else "pytorch", var_estimator="biased" if book else "unbiased")
    trainer = StackedTrainer(model, data.x_train, data.y_train, optimizer="sgd", lr=spec.lr,
                             batch_size=min(spec.batch_size, len(data.x_train)), generator=gen)
    per_epoch, throttle = [], Throttle()

    def snapshot(done):
        acc = np.array(per_epoch, np.float32).reshape(-1, 2 * len(scales)).T  # (2S, epochs_done)
        return InitSweepResult(spec, scales, acc[: len(scales)], acc[len(scales):], list(trainer.diverged_at), done)

    for _ in range(spec.epochs):
        for _ in range(trainer.sampler.batches_per_epoch):
            trainer.step()
        acc = accuracy(model, data.x_train, data.y_train).numpy()
        acc[[d is not None for d in trainer.diverged_at]] = np.nan
        per_epoch.append(acc)
        if throttle.due():
            yield snapshot(False)
    yield snapshot(True)


COMMAND = Command("init-sweep", "the DLfS init-scale sweep: 16 init stds x (BN, no BN), train accuracy per epoch",
                  InitSweepSpec, run, InitSweepResult.summary, aliases={"data": "dataset"})
