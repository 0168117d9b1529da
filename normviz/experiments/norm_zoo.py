"""Same model, every norm: one small CNN (or MLP) on the 8x8 digits trained with each normalisation,
on the same batches from the same initial weights, with loss and test-accuracy curves.

    python -m normviz alternatives --view every-norm --model cnn --batch-size 8 --steps 300 --seeds 3 --json zoo.json

The norms have different layers, so they cannot share one batched computation: they train in one loop,
step by step on the same batch. The seeds of one norm are copies of one architecture and train as one
vmapped computation (Replicas); measured on this CPU (thread time, CNN, batch 32), 2 and 3 seeds cost
1.7x and 2.1x one seed instead of 2x and 3x.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from normviz.config import DataSpec, Spec, param
from normviz.data import Dataset, load_checked
from normviz.layers import NORM_LABELS, RMSNorm, group_count
from normviz.models import MLP, SmallCNN
from normviz.runs import Throttle
from normviz.stacked import stacked_cross_entropy
from normviz.train import BatchSampler

MODELS = ("cnn", "mlp")
CNN_NORMS = ("none", "batch", "layer", "instance", "group", "group+ws", "renorm")
MLP_NORMS = ("none", "batch", "layer", "group", "renorm")  # no spatial dims: no InstanceNorm, no conv to standardise
CNN_CHANNELS = (16, 32)
MLP_DEPTH, MLP_WIDTH = 3, 64
RENORM_KWARGS = {"momentum": 0.1, "rmax": 3.0, "dmax": 5.0}  # momentum as BN's, so both run the same schedule
SMOOTH = 20  # steps averaged for the "final loss"
# RunningStats' in-place lerp_ has no vmap batching rule: torch falls back to a loop over the copies and says so
warnings.filterwarnings(
    "ignore",
    message="There is a performance drop because we have not yet implemented the batching rule for aten::lerp_",
)


# settings several views share: one definition each, so that the page's single spec stays consistent
def model_param():
    return param(
        "cnn",
        "the network: a 2-conv CNN (16, 32 channels) on the 8x8 images, or a 3x64 MLP",
        choices=MODELS,
        label="Model",
    )


def batch_param():
    return param(32, "samples per training step", lo=2, hi=512, log=True, label="Batch size")


def steps_param():
    return param(150, "training steps", lo=10, hi=3000, label="Training steps")


def lr_param():
    return param(0.003, "Adam learning rate", lo=1e-4, hi=0.1, log=True, label="Learning rate (Adam)")


def groups_param():
    return param(
        4,
        "GroupNorm's number of groups G (if G does not divide the channel count, the largest divisor below it is used)",
        lo=1,
        hi=32,
        label="GroupNorm groups G",
    )


@dataclass(frozen=True)
class ZooSpec(Spec):
    """One architecture, every norm, one batch size."""

    model: str = model_param()
    batch_size: int = batch_param()
    steps: int = steps_param()
    lr: float = lr_param()
    groups: int = groups_param()
    seeds: int = param(
        1,
        "initial weights per norm; more than one are trained as one vmapped computation and the "
        "table shows their range",
        lo=1,
        hi=5,
        label="Seeds per norm",
    )


def norms_for(model: str) -> tuple[str, ...]:
    return CNN_NORMS if model == "cnn" else MLP_NORMS


def zoo_norms(model: str) -> tuple[str, ...]:
    """The norms "every norm on the same model" trains: norms_for(model) and RMSNorm (which norm_cost does not time)."""
    return norms_for(model) + ("rms",)


def build(model: str, norm: str, groups: int, seed: int, n_classes: int = 10) -> nn.Module:
    """The model with `norm` ("group+ws": GroupNorm after weight-standardised convs); same seed, same weights."""
    gen = torch.Generator().manual_seed(seed)
    kind = {"group+ws": "group", "rms": "layer"}.get(norm, norm)  # RMSNorm takes LayerNorm's places below
    kwargs = RENORM_KWARGS if kind == "renorm" else {}
    if model == "cnn":
        net = SmallCNN(
            n_classes,
            CNN_CHANNELS,
            kind,
            groups=groups,
            weight_standardization=norm == "group+ws",
            generator=gen,
            **kwargs,
        )
    else:
        if norm not in MLP_NORMS + ("rms",):
            raise ValueError(f"the MLP has no {norm!r}: {NORM_LABELS.get(norm, norm)} needs conv layers")
        if kind == "group":
            kwargs = {"groups": groups}
        net = MLP(64, n_classes, MLP_DEPTH, MLP_WIDTH, "relu", norm=kind, init="he", generator=gen, **kwargs)
    if norm == "rms":  # make_norm builds no RMSNorm
        for block in net.blocks:
            block.norm = RMSNorm(block.linear.weight.shape[0])
    return net


@torch.no_grad()
def eval_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy in eval mode (running statistics for BN and Batch Renorm); the mode is restored."""
    was = model.training
    model.eval()
    acc = (model(x).argmax(1) == y).float().mean().item()
    model.train(was)
    return acc


def digits(seed: int) -> Dataset:
    return load_checked(DataSpec(dataset="digits", seed=seed))


class Replicas:
    """R copies of one architecture (R initial weights), called as one: (B, D) -> (R, B, n_classes).

    With R > 1 the copies run as one vmapped computation (torch.func.stack_module_state + functional_call):
    per seed it costs about 0.6x a Python loop over the copies. BatchNorm's running statistics are stacked
    buffers, updated in place under vmap. One Adam over the stacked parameters equals R separate ones.
    """

    def __init__(self, models: list[nn.Module]):
        self.r = len(models)
        if self.r == 1:
            self.module, self.params = models[0], dict(models[0].named_parameters())
            return
        self.params, self.buffers = stack_module_state(models)  # name -> (R, ...) leaf tensors
        self.module = copy.deepcopy(models[0]).to("meta")  # the architecture; its weights live in params
        self._vmapped = torch.func.vmap(
            lambda p, b, x: functional_call(self.module, (p, b), (x,)), in_dims=(0, 0, None), randomness="different"
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.r == 1:
            return self.module(x).unsqueeze(0)
        return self._vmapped(self.params, self.buffers, x)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """(R,) accuracies in eval mode; the mode is restored."""
        self.module.eval()
        acc = (self(x).argmax(-1) == y).float().mean(-1).numpy()
        self.module.train()
        return acc


@dataclass
class ZooResult:
    spec: ZooSpec
    norms: tuple[str, ...]
    groups_used: int  # GroupNorm's real group count in the first norm layer
    steps_done: int = 0
    done: bool = False
    loss: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (S, K) mean over seeds
    probe_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T,)
    test_acc: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 1), np.float32))  # (T, K, R) eval mode
    train_acc: np.ndarray | None = None  # (K, R) eval mode on 500 training samples, at the end
    diverged_at: list = field(default_factory=list)  # per norm: step or None (the first seed that diverged)

    @property
    def progress(self) -> float:
        return self.steps_done / self.spec.steps

    def table(self) -> list[dict]:
        """One row per norm: final accuracies (mean over seeds, and their range) and loss; None if diverged
        (then a column says at which step)."""
        rows = []
        for k, norm in enumerate(self.norms):
            d = self.diverged_at[k] if self.diverged_at else None
            last = self.loss[-SMOOTH:, k] if len(self.loss) else np.zeros(0)
            test = self.test_acc[-1, k] if len(self.test_acc) and not d else None
            row = {"norm": NORM_LABELS.get(norm, norm), "test accuracy": None if test is None else float(test.mean())}
            if self.spec.seeds > 1:
                row["test accuracy, lowest seed"] = None if test is None else float(test.min())
                row["test accuracy, highest seed"] = None if test is None else float(test.max())
            row["train accuracy"] = None if d or self.train_acc is None else float(self.train_acc[k].mean())
            row[f"loss (last {SMOOTH} steps)"] = None if d or not len(last) else float(last.mean())
            if any(self.diverged_at):
                row["diverged at step"] = d
            rows.append(row)
        return rows

    def summary(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "norms": list(self.norms),
            "groups_used": self.groups_used,
            "steps_done": self.steps_done,
            "batch_size": self.spec.batch_size,
            "seeds": self.spec.seeds,
            "table": self.table(),
            "probe_steps": self.probe_steps.tolist(),
            "test_acc": {n: self.test_acc[:, k].mean(-1).tolist() for k, n in enumerate(self.norms)},
        }


def probe_schedule(steps: int, points: int = 10) -> set[int]:
    return set(np.unique(np.linspace(0, steps, points + 1).round().astype(int)).tolist())


def run(spec: ZooSpec) -> Iterator[ZooResult]:
    """Train every norm on the same batches; yields growing partial results and the final one."""
    data = digits(spec.seed)
    norms = zoo_norms(spec.model)
    seeds = range(spec.seed, spec.seed + spec.seeds)
    stacks = [Replicas([build(spec.model, n, spec.groups, s, data.n_classes) for s in seeds]) for n in norms]
    opts = [torch.optim.Adam(m.parameters(), lr=spec.lr, fused=True) for m in stacks]
    sampler = BatchSampler(
        len(data.x_train), min(spec.batch_size, len(data.x_train)), torch.Generator().manual_seed(spec.seed)
    )
    first = CNN_CHANNELS[0] if spec.model == "cnn" else MLP_WIDTH
    x_fit, y_fit = data.x_train[:500], data.y_train[:500]
    losses, probe_steps, test_acc = [], [], []
    diverged: list[int | None] = [None] * len(norms)
    probes, throttle = probe_schedule(spec.steps), Throttle()
    dead = np.full(spec.seeds, np.nan, np.float32)

    def record(step):
        probe_steps.append(step)
        test_acc.append([m.accuracy(data.x_test, data.y_test) if d is None else dead for m, d in zip(stacks, diverged)])

    def snapshot(step, done):
        train = (
            np.array([m.accuracy(x_fit, y_fit) if d is None else dead for m, d in zip(stacks, diverged)], np.float32)
            if done
            else None
        )
        return ZooResult(
            spec,
            norms,
            group_count(first, spec.groups),
            step,
            done,
            np.array(losses, np.float32).reshape(-1, len(norms)),
            np.array(probe_steps, np.int64),
            np.array(test_acc, np.float32).reshape(-1, len(norms), spec.seeds),
            train,
            list(diverged),
        )

    record(0)
    yield snapshot(0, False)
    step = 0
    for step in range(1, spec.steps + 1):
        idx = sampler.next()
        xb, yb = data.x_train[idx], data.y_train[idx]
        row = []
        for k, (model, opt) in enumerate(zip(stacks, opts)):
            if diverged[k] is not None:
                row.append(np.nan)
                continue
            loss = stacked_cross_entropy(model(xb), yb)  # (R,)
            if not torch.isfinite(loss).all():
                diverged[k] = step
                row.append(np.nan)
                continue
            opt.zero_grad()
            loss.sum().backward()  # the sum keeps each seed's gradient its own
            opt.step()
            row.append(loss.mean().item())
        losses.append(row)
        if step in probes:
            record(step)
        if all(d is not None for d in diverged):
            break
        if throttle.due():
            yield snapshot(step, False)
    if probe_steps[-1] != step:
        record(step)
    yield snapshot(step, True)
