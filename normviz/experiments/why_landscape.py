"""A smoother loss landscape (Santurkar et al. 2018, "How Does Batch Normalization Help Optimization?"): at
checkpoints during training, step along the gradient and measure how much the loss and the gradient change.

    python -m normviz why_bn --view landscape --lr 0.1 --check-every 20 --json landscape.json
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
    lr_param,
    train_step,
)
from normviz.runs import Throttle
from normviz.stacked import StackedMLP, StackShape, stacked_cross_entropy
from normviz.train import BatchSampler

MODELS = ("BN", "no BN")


@dataclass(frozen=True)
class LandscapeSpec(WhySpec):
    """A BN and a no-BN MLP trained on the same batches at one rate, probed along the gradient now and then."""

    lr: float = lr_param()
    check_every: int = param(
        15, "probe the landscape every k training steps", lo=1, hi=500, label="Probe every k steps"
    )
    step_sizes: int = param(8, "step sizes η probed at each checkpoint", lo=2, hi=32, label="Step sizes probed")
    step_max: float = param(
        4.0,
        "the largest step size, in units of the learning rate (the others are evenly spaced below it)",
        lo=0.1,
        hi=20.0,
        label="Largest step (x learning rate)",
    )

    def etas(self) -> np.ndarray:
        """(E,) step sizes: lr * step_max * j / E for j = 1..E."""
        return self.lr * self.step_max * np.arange(1, self.step_sizes + 1) / self.step_sizes


def _params(model: StackedMLP) -> list[torch.Tensor]:
    return list(model.parameters())  # weights, biases, then the BN models' gammas and betas


def _gradients(model: StackedMLP, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-model loss (K,) and gradient of the batch `x` in train mode without touching the running stats."""
    loss = stacked_cross_entropy(model(x, "probe"), y)
    return loss.detach(), list(torch.autograd.grad(loss.sum(), _params(model)))


def _per_model_sq(tensors: list[torch.Tensor], k: int) -> torch.Tensor:
    """Sum of squares per model and step over (rows, E, ...) tensors -> (k, E). The BN models come first, so
    the gammas' and betas' n_bn rows add to the first rows."""
    total = torch.zeros(k, tensors[0].shape[1])
    for t in tensors:
        sq = t.square().flatten(2).sum(-1)  # (rows, E)
        total[: sq.shape[0]] += sq
    return total


def probe(
    model: StackedMLP, template: StackedMLP, x: torch.Tensor, y: torch.Tensor, etas: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The landscape along the gradient g of each of the K models on the batch (x, y), in train mode.

    `template` is a StackedMLP of the same shape with K*E models (n_bn*E with BN); row k*E + e receives
    model k's parameters moved to θ - η_e g. Returns per model (K,) and step (K, E):
    loss0, grad_norm, loss (at θ - ηg), grad_change ‖∇L(θ - ηg) - ∇L(θ)‖ and distance ‖ηg‖."""
    k, e = model.k, len(etas)
    loss0, grads = _gradients(model, x, y)
    with torch.no_grad():
        for moved, p, g in zip(_params(template), _params(model), grads):
            step = etas.view(1, e, *([1] * (p.dim() - 1))) * g.unsqueeze(1)  # (rows, E, ...)
            moved.copy_((p.unsqueeze(1) - step).reshape(moved.shape))
    loss, moved_grads = _gradients(template, x, y)
    change = [(gm.reshape(g.shape[0], e, *g.shape[1:]) - g.unsqueeze(1)) for gm, g in zip(moved_grads, grads)]
    g_sq = _per_model_sq([g.unsqueeze(1) for g in grads], k)[:, 0]  # (K,)
    change_sq = _per_model_sq(change, k)  # (K, E)
    return {
        "loss0": loss0,
        "grad_norm": g_sq.sqrt(),
        "loss": loss.reshape(k, e),
        "grad_change": change_sq.sqrt(),
        "distance": etas.view(1, e) * g_sq.sqrt().view(k, 1),
    }


@dataclass
class LandscapeResult(WhyResult):
    spec: LandscapeSpec
    steps_done: int = 0
    done: bool = False
    loss: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # (S, K) training loss
    check_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T,)
    probe_loss: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 0), np.float32))  # (T, K, E)
    grad_change: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 0), np.float32))  # (T, K, E)
    distance: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 0), np.float32))  # (T, K, E) ‖ηg‖
    diverged_at: list = field(default_factory=lambda: [None, None])

    MODELS = MODELS

    def loss_band(self) -> tuple[np.ndarray, np.ndarray]:
        """(T, K) lowest and highest loss along the gradient at each checkpoint."""
        return self.probe_loss.min(-1), self.probe_loss.max(-1)

    def smoothness(self) -> np.ndarray:
        """(T, K) effective β-smoothness: the largest ‖∇L(θ - ηg) - ∇L(θ)‖ / ‖ηg‖ over the step sizes."""
        return (self.grad_change / np.maximum(self.distance, 1e-12)).max(-1)

    def mean_spread(self) -> np.ndarray:
        """(K,) the loss band's width (max - min over η), averaged over the checkpoints."""
        lo, hi = self.loss_band()
        return np.nanmean(hi - lo, 0) if len(lo) else np.full(2, np.nan)

    def summary(self) -> dict:
        lo, hi = self.loss_band()
        return {
            "spec": self.spec.to_dict(),
            "steps_done": self.steps_done,
            "etas": self.spec.etas().tolist(),
            "check_steps": self.check_steps.tolist(),
            "diverged_at": dict(zip(MODELS, self.diverged_at)),
            **{
                m: {
                    "loss_min": lo[:, k].tolist(),
                    "loss_max": hi[:, k].tolist(),
                    "grad_change_max": self.grad_change[:, k].max(-1).tolist(),
                    "beta_smoothness": self.smoothness()[:, k].tolist(),
                    "mean_loss_spread": float(self.mean_spread()[k]),
                }
                for k, m in enumerate(MODELS)
            },
        }


def run(spec: LandscapeSpec) -> Iterator[LandscapeResult]:
    """Train the pair; at every checkpoint probe both along their gradients on that step's batch."""
    data = digits(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    shape = StackShape(data.n_features, data.n_classes, spec.depth, spec.width)
    model = StackedMLP(shape, [1.0, 1.0], n_bn=1, weight_init=INIT, generator=gen)
    e = spec.step_sizes
    template = StackedMLP(shape, [1.0] * (2 * e), n_bn=e)
    etas = torch.tensor(spec.etas(), dtype=torch.float32)
    opt = StackedSGD(model, torch.full((2,), spec.lr))
    sampler = BatchSampler(len(data.x_train), min(spec.batch_size, len(data.x_train)), gen)
    losses, steps, probes, diverged_at, throttle = [], [], [], [None, None], Throttle()

    def snapshot(step: int, done: bool) -> LandscapeResult:
        stack = {q: np.array([p[q] for p in probes], np.float32).reshape(-1, 2, e) for q in ("loss", "grad_change")}
        dist = np.array([p["distance"] for p in probes], np.float32).reshape(-1, 2, e)
        return LandscapeResult(
            spec,
            step,
            done,
            np.array(losses, np.float32).reshape(-1, 2),
            np.array(steps, np.int64),
            stack["loss"],
            stack["grad_change"],
            dist,
            list(diverged_at),
        )

    step = 0
    for step in range(1, spec.steps + 1):
        idx = sampler.next()
        xb, yb = data.x_train[idx], data.y_train[idx]
        if (step - 1) % spec.check_every == 0:  # before this step's update, on this step's batch
            found = {q: v.numpy() for q, v in probe(model, template, xb, yb, etas).items()}
            for k, d in enumerate(diverged_at):
                if d is not None:
                    for v in found.values():
                        v[k] = np.nan
            probes.append(found)
            steps.append(step - 1)
        losses.append(train_step(opt, model(xb), yb, diverged_at, step))
        if all(d is not None for d in diverged_at):
            break
        if throttle.due():
            yield snapshot(step, False)
    yield snapshot(step, True)
