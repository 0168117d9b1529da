"""The DLfS weight-init experiment: 16 init stds, each with a BN and a no-BN MLP, as one stacked run.

python -m normviz init_sweep --epochs 20 --scales 16 --running-init zeros --json sweep.json
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from normviz.config import ACTIVATIONS, DataSpec, SpecError, param
from normviz.data import load_checked
from normviz.runs import Throttle
from normviz.runtime import SpareCore
from normviz.stacked import StackedMLP, StackShape
from normviz.train import StackedTrainer, accuracy

MOMENTUM = 0.1  # BN momentum of every network, PyTorch convention (the book's 0.9 in Keras')
RUNNING_INIT_HELP = (
    "running stats start at 0 (the book: mean 0, var 0, biased variance) or as in PyTorch "
    "(mean 0, var 1, unbiased variance)"
)


@dataclass(frozen=True)
class InitSweepSpec(DataSpec):
    """The book's set-up: 1,000 digits for training, 64-100x5-10 ReLU MLP, SGD lr 0.01, batch 100."""

    n_samples: int = param(1250, "samples in all; 80% (1,000) train", lo=20, hi=70_000)
    test_fraction: float = param(0.2, "share of samples held out", lo=0.05, hi=0.9)
    scaling: str = param(
        "unit", "input scaling (the book divides pixels by their maximum)", choices=("standardize", "unit", "none")
    )
    scales: int = param(16, "number of init stds, log-spaced from scale_max down to scale_min", lo=2, hi=32)
    scale_max: float = param(1.0, "largest init std", lo=1e-4, hi=10.0, log=True)
    scale_min: float = param(1e-4, "smallest init std", lo=1e-5, hi=10.0, log=True)
    epochs: int = param(20, "training epochs", lo=1, hi=100)
    depth: int = param(5, "hidden layers", lo=1, hi=10)
    width: int = param(100, "units per hidden layer", lo=4, hi=512)
    activation: str = param("relu", "activation function", choices=ACTIVATIONS)
    lr: float = param(0.01, "SGD learning rate", lo=1e-5, hi=10.0, log=True)
    batch_size: int = param(100, "samples per step", lo=2, hi=1024, log=True)
    running_init: str = param("zeros", RUNNING_INIT_HELP, choices=("zeros", "pytorch"))
    eps: float = param(
        1e-6,
        "BN's epsilon: sqrt(var + eps) (the book's BatchNormalization uses 10e-7 = 1e-6)",
        lo=1e-10,
        hi=1.0,
        log=True,
    )

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
    input_var: np.ndarray | None = None  # (S, depth) variance of each BN layer's input at init, mean over channels
    done: bool = False

    @property
    def progress(self) -> float:
        return self.bn_acc.shape[1] / self.spec.epochs

    def summary(self) -> dict:
        return {
            "scales": self.scales,
            "epochs": self.spec.epochs,
            "running_init": self.spec.running_init,
            "eps": self.spec.eps,
            "bn": {"train_acc": self.bn_acc.tolist()},
            "plain": {"train_acc": self.plain_acc.tolist()},
        }


def run(spec: InitSweepSpec, spare_core: SpareCore | None = None) -> Iterator[InitSweepResult]:
    """`spare_core` chooses the torch thread count before each step (benchmarks and tests pin it)."""
    data = load_checked(spec)
    scales = spec.init_stds()
    gen = torch.Generator().manual_seed(spec.seed)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width, spec.activation)
    book = spec.running_init == "zeros"
    model = StackedMLP(
        shape,
        scales + scales,
        n_bn=len(scales),
        generator=gen,
        momenta=(MOMENTUM,),
        init="zeros" if book else "pytorch",
        var_estimator="biased" if book else "unbiased",
        eps=spec.eps,
    )
    trainer = StackedTrainer(
        model,
        data.x_train,
        data.y_train,
        optimizer="sgd",
        lr=spec.lr,
        batch_size=min(spec.batch_size, len(data.x_train)),
        generator=gen,
    )
    per_epoch, throttle = [], Throttle()
    input_var = bn_input_variance(model, data.x_train)

    def snapshot(done):
        acc = np.array(per_epoch, np.float32).reshape(-1, 2 * len(scales)).T  # (2S, epochs_done)
        bn, plain = acc[: len(scales)], acc[len(scales) :]
        return InitSweepResult(spec, scales, bn, plain, list(trainer.diverged_at), input_var, done)

    # its (32, 100, 100) operations are large enough to share out between cores
    spare_core = spare_core or SpareCore()
    try:
        for _ in range(spec.epochs):
            for _ in range(trainer.sampler.batches_per_epoch):
                spare_core.step()
                trainer.step()
            acc = accuracy(model, data.x_train, data.y_train).numpy()
            acc[[d is not None for d in trainer.diverged_at]] = np.nan
            per_epoch.append(acc)
            if throttle.due():
                yield snapshot(False)
    finally:
        spare_core.release()
    yield snapshot(True)


@torch.no_grad()
def bn_input_variance(model: StackedMLP, x: torch.Tensor) -> np.ndarray:
    """(n_bn, depth): the variance of each BN layer's input over `x` (batch statistics), mean over channels."""
    found = {}
    model(x, "probe", record=lambda layer, t: found.update({layer: t["linear"][: model.n_bn].var(1, unbiased=False)}))
    return torch.stack([found[i].mean(-1) for i in sorted(found)], 1).numpy()
