"""What the five "Why BN helps" experiments share: their common settings, the digits, and SGD with a
learning rate (and weight decay) of its own for every model of a stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from normviz.config import DataSpec, Spec, param
from normviz.data import Dataset, load_checked
from normviz.stacked import StackedMLP, stacked_cross_entropy
from normviz.train import mark_diverged

N_CLASSES = 10


# settings several experiments share: one definition each, so that the page's single spec stays consistent
def depth_param():
    return param(6, "hidden layers of the MLP", lo=1, hi=8, label="Hidden layers")


def width_param():
    return param(64, "units per hidden layer", lo=8, hi=256, label="Width")


def steps_param():
    return param(150, "training steps", lo=20, hi=3000, label="Training steps")


def batch_param():
    return param(64, "samples per training step", lo=4, hi=512, log=True, label="Batch size")


def lr_param():
    return param(0.1, "SGD learning rate", lo=1e-4, hi=10.0, log=True, label="Learning rate (SGD)")


@dataclass(frozen=True)
class WhySpec(Spec):
    """The settings every "Why BN helps" experiment has; each adds its own after them."""

    depth: int = depth_param()
    width: int = width_param()
    steps: int = steps_param()
    batch_size: int = batch_param()


class WhyResult:
    """What the five results share: progress over the training steps, and their models' names (MODELS)."""

    MODELS: tuple[str, ...] = ()

    @property
    def progress(self) -> float:
        return self.steps_done / self.spec.steps

    @property
    def models(self) -> tuple[str, ...]:
        return self.MODELS


def digits(seed: int, scaling: str = "standardize") -> Dataset:
    """The bundled 8x8 digits: 1,348 training and 449 test images."""
    return load_checked(DataSpec(dataset="digits", scaling=scaling, seed=seed))


class StackedSGD:
    """Plain SGD on a StackedMLP where model k has its own learning rate lr[k] and weight decay wd[k].

    torch's optimizers take one rate per tensor, and every stacked tensor holds all K models; the rows of
    a (K, ...) tensor are the models, so a (K, 1, 1) rate is K optimizers in one. Weight decay, when given,
    applies only to the weights of the hidden (BN-followed) layers: `p <- p - lr * (grad + wd * p)`.
    """

    def __init__(self, model: StackedMLP, lr: torch.Tensor, wd: torch.Tensor | None = None):
        self.model = model
        self.lr = lr.clone().float()  # (K,)
        self.wd = None if wd is None else wd.clone().float()

    @torch.no_grad()
    def step(self, hidden_lr: torch.Tensor | None = None) -> None:
        """One update; `hidden_lr` (K, L) overrides the rate of each model's hidden-layer weights."""
        m, n_bn = self.model, self.model.n_bn
        depth = m.shape.depth
        for i, (w, b) in enumerate(zip(m.weights, m.biases)):
            lr = self.lr if hidden_lr is None or i >= depth else hidden_lr[:, i]
            lr = lr.view(-1, 1, 1)
            if w.grad is not None:
                if self.wd is not None and i < depth:
                    w.mul_(1 - lr * self.wd.view(-1, 1, 1))
                w.addcmul_(w.grad, lr, value=-1)
            if b.grad is not None:
                b.addcmul_(b.grad, lr, value=-1)
        for p in list(m.gammas) + list(m.betas):
            if p.grad is not None:
                p.addcmul_(p.grad, self.lr[:n_bn].view(-1, 1, 1), value=-1)

    def zero_grad(self) -> None:
        for p in self.model.parameters():
            p.grad = None


INIT = "xavier"  # std sqrt(1/fan_in): without BN, ReLU activations shrink layer by layer, as in most real nets
DIVERGED_LOSS = 10 * math.log(N_CLASSES)  # ten times chance level: a loss no learning network comes back from


def diverged(losses: torch.Tensor) -> torch.Tensor:
    """(K,) bool: a loss that is not finite or above DIVERGED_LOSS counts as diverged."""
    return ~torch.isfinite(losses) | (losses > DIVERGED_LOSS)


def backward_alive(losses: torch.Tensor, diverged_at: list, step: int) -> None:
    """Mark newly diverged models (their step is recorded) and backpropagate the others' summed losses."""
    alive = mark_diverged(losses, diverged_at, step, diverged(losses.detach()))
    if alive.any():
        losses[alive].sum().backward()  # the sum keeps each model's gradient its own


def train_step(opt: StackedSGD, logits: torch.Tensor, y: torch.Tensor, diverged_at: list, step: int) -> np.ndarray:
    """One SGD step of every model of the stack that has not diverged (backward_alive); (K,) their losses."""
    loss = stacked_cross_entropy(logits, y)
    opt.zero_grad()
    backward_alive(loss, diverged_at, step)
    opt.step()
    return loss.detach().numpy()
