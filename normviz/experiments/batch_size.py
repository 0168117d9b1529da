"""Small-batch training: BN, GroupNorm, LayerNorm and Batch Renorm trained at batch sizes 2..128 (the GroupNorm
paper's figure 1 in small), and an online stream whose batch size changes every step.

    python -m normviz train_vs_inference --part batch_size --sizes 2,8,32,128 --norms batch,group,layer --json out.json

Every batch size sees the same number of samples (`epochs` passes over the training set) and, by default, a
learning rate scaled linearly with the batch size (lr * B / 32), as the GroupNorm paper does; with one fixed
rate the smallest batches learn far too fast or too slowly for every norm and the comparison shows nothing.
All norms at one batch size train as one stacked computation (`NormStack`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from normviz.config import DataSpec, ModelSpec, SpecError, param
from normviz.data import load_checked
from normviz.layers import ACTIVATION_FORMS, group_count, renorm_correction
from normviz.runs import Throttle
from normviz.runtime import check_cancelled
from normviz.stacked import init_std, stacked_cross_entropy, stacked_linears
from normviz.train import StackedTrainer, accuracy, mark_diverged

NORM_CHOICES = ("batch", "group", "layer", "renorm", "none")  # the order of charts and JSON
STACK_ORDER = ("batch", "renorm", "layer", "group", "none")  # batch-statistics norms side by side first
BATCH_STAT_NORMS = ("batch", "renorm")
REF_BATCH = 32  # `lr` is the rate at this batch size
IMAGE_DATASETS = ("digits", "mnist-file", "upload")


@dataclass(frozen=True)
class NetSpec(ModelSpec, DataSpec):
    """What every network of the Train vs inference view shares: data, MLP shape, schedule and BN momentum."""

    dataset: str = param(
        "digits", "image data: the bundled 8x8 digits, MNIST files, or your upload", choices=IMAGE_DATASETS
    )
    depth: int = param(3, "hidden layers of the MLPs", lo=1, hi=8)
    width: int = param(64, "units per hidden layer", lo=4, hi=256)
    init: str = param("he", "weight init: a plain std, Xavier or He", choices=("std", "xavier", "he"))
    lr: float = param(
        0.1,
        f"SGD learning rate at batch {REF_BATCH}; a batch of B uses lr*B/{REF_BATCH} (the linear scaling rule)",
        lo=1e-4,
        hi=10.0,
        log=True,
    )
    momentum: float = param(
        0.1,
        "BN running-statistics momentum (PyTorch convention: weight of the new batch)",
        lo=1e-3,
        hi=1.0,
        log=True,
        label="BN momentum (PyTorch convention)",
    )


@dataclass(frozen=True)
class BatchSizeSpec(NetSpec):
    """The batch-size sweep and the online stream."""

    sizes: tuple[int, ...] = param(
        (2, 4, 8, 16, 32, 64, 128), "training batch sizes of the sweep", lo=2, hi=1024, label="Sweep batch sizes"
    )
    epochs: int = param(
        1,
        "passes over the training set at every batch size of the sweep (same samples seen)",
        lo=1,
        hi=50,
        label="Epochs (sweep)",
    )
    norms: tuple[str, ...] = param(
        ("batch", "group", "layer", "renorm"),
        "normalizations compared in the sweep and the stream",
        choices=NORM_CHOICES,
        label="Norms compared",
    )
    groups: int = param(4, "GroupNorm groups (the largest count up to this that divides the width)", lo=1, hi=64)
    rmax: float = param(3.0, "Batch Renorm: r = sigma_B / sigma_running is clipped to [1/rmax, rmax]", lo=1.0, hi=100.0)
    dmax: float = param(
        5.0, "Batch Renorm: d = (mu_B - mu_running) / sigma_running is clipped to [-dmax, dmax]", lo=0.0, hi=100.0
    )
    lr_scaling: str = param(
        "linear",
        f"linear: lr*B/{REF_BATCH} at batch B (samples weigh the same at every size); none: lr at every batch size",
        choices=("linear", "none"),
    )
    stream_steps: int = param(300, "steps of the online stream", lo=10, hi=5000)
    stream_max_batch: int = param(
        64, "the stream's batch size is drawn uniformly from 1 to this, every step", lo=1, hi=512
    )


def stack_order(norms) -> list[str]:
    return sorted(norms, key=STACK_ORDER.index)


class NormStack(nn.Module):
    """K MLPs of one shape, one per norm kind, trained as one computation: stacked weights (K, fan_in, fan_out).

    All K start from one weight draw. In each layer the batch-statistics models (BN, Batch Renorm) are normalised
    by one `F.batch_norm` over their channels side by side, the LayerNorm and GroupNorm models by one call each,
    so a step costs about as many kernels as a single model. Model k equals `MLP(norm=kinds[k])` of models.py
    with the same weights (tested), where `renorm` is `BatchRenorm(momentum, rmax, dmax)`.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        norms,
        depth: int,
        width: int,
        activation: str = "relu",
        norm_place: str = "before",
        init: str = "he",
        init_std_: float = 0.01,
        groups: int = 4,
        momentum: float = 0.1,
        rmax: float = 3.0,
        dmax: float = 5.0,
        eps: float = 1e-5,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.kinds = stack_order(norms)
        self.k, self.width, self.depth, self.norm_place = len(self.kinds), width, depth, norm_place
        self.act = ACTIVATION_FORMS[activation].fn
        self.groups, self.momentum, self.eps = group_count(width, groups), momentum, eps
        self.rmax, self.dmax = rmax, dmax
        self.n_bn = sum(k == "batch" for k in self.kinds)
        self.n_rn = sum(k == "renorm" for k in self.kinds)
        self.n_ln = sum(k == "layer" for k in self.kinds)
        self.n_gn = sum(k == "group" for k in self.kinds)
        sizes = [n_in] + [width] * depth + [n_out]
        self.weights, self.biases = stacked_linears(  # one draw, every model the same weights
            sizes, lambda fan_in: [init_std(init, fan_in, init_std_)] * self.k, generator
        )
        normed = self.k - sum(k == "none" for k in self.kinds)
        self.gammas = nn.ParameterList(nn.Parameter(torch.ones(normed, 1, width)) for _ in range(depth))
        self.betas = nn.ParameterList(nn.Parameter(torch.zeros(normed, 1, width)) for _ in range(depth))
        n_stat = (self.n_bn + self.n_rn) * width
        for layer in range(depth):  # the batch-statistics models' running stats, side by side: (n_stat,)
            self.register_buffer(f"running_mean{layer}", torch.zeros(n_stat))
            self.register_buffer(f"running_var{layer}", torch.ones(n_stat))

    def running_stats(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, var) of one layer: (n_batch_stat_models, width) each, in stack order."""
        shape = (-1, self.width)
        return getattr(self, f"running_mean{layer}").view(shape), getattr(self, f"running_var{layer}").view(shape)

    def _batch_stat_norm(self, h: torch.Tensor, layer: int, mode: str) -> torch.Tensor:
        """BN and Batch Renorm of their slices h (n, B, C) -> (n, B, C)."""
        n, b, c = h.shape
        flat = h.transpose(0, 1).reshape(b, n * c)  # (B, n*C): every model's channels side by side
        rm, rv = getattr(self, f"running_mean{layer}"), getattr(self, f"running_var{layer}")
        if mode == "eval":
            return F.batch_norm(flat, rm, rv, training=False, eps=self.eps).reshape(b, n, c).transpose(0, 1)
        r = d = None
        if self.n_rn:  # corrections from the running stats *before* this batch updates them
            cols = slice(self.n_bn * c, None)
            with torch.no_grad():
                var, mean = torch.var_mean(flat[:, cols], dim=0, unbiased=False)
                r, d = renorm_correction(
                    mean, torch.sqrt(var + self.eps), rm[cols], torch.sqrt(rv[cols] + self.eps), self.rmax, self.dmax
                )
        track = mode == "train"
        y = F.batch_norm(
            flat, rm if track else None, rv if track else None, training=True, momentum=self.momentum, eps=self.eps
        )
        if r is not None:
            ones, zeros = flat.new_ones(self.n_bn * c), flat.new_zeros(self.n_bn * c)
            y = y * torch.cat([ones, r]) + torch.cat([zeros, d])
        return y.reshape(b, n, c).transpose(0, 1)

    def _norm(self, h: torch.Tensor, layer: int, mode: str, skip_batch_stats: bool) -> torch.Tensor:
        n_stat, c = self.n_bn + self.n_rn, h.shape[-1]
        parts, start = [], 0
        if n_stat:
            part = h[:n_stat]
            parts.append(part.detach() * 0 if skip_batch_stats else self._batch_stat_norm(part, layer, mode))
            start = n_stat
        if self.n_ln:
            parts.append(F.layer_norm(h[start : start + self.n_ln], (c,), eps=self.eps))
            start += self.n_ln
        if self.n_gn:
            part = h[start : start + self.n_gn]  # (n, B, C)
            parts.append(F.group_norm(part.reshape(-1, c), self.groups, eps=self.eps).reshape(part.shape))
            start += self.n_gn
        normed = torch.cat(parts) if len(parts) > 1 else parts[0]
        normed = normed * self.gammas[layer] + self.betas[layer]
        return torch.cat([normed, h[start:]]) if start < self.k else normed

    def forward(
        self, x: torch.Tensor, mode: str = "train", record=None, eval_row: int = 0, skip_batch_stats: bool = False
    ) -> torch.Tensor:
        """x (B, n_in) -> logits (K, B, n_out). mode: 'train' (batch statistics; running stats updated), 'eval'
        (running stats) or 'probe' (batch statistics, running stats untouched). `skip_batch_stats` leaves the
        BN/Renorm models out of a step (their output is 0 and must not enter the loss): used for batches of one."""
        h = torch.matmul(x, self.weights[0]) + self.biases[0]  # (K, B, width)
        for layer in range(self.depth):
            if layer:
                h = torch.baddbmm(self.biases[layer], h, self.weights[layer])
            if self.norm_place == "before":
                h = self.act(self._norm(h, layer, mode, skip_batch_stats))
            else:
                h = self._norm(self.act(h), layer, mode, skip_batch_stats)
        return torch.baddbmm(self.biases[-1], h, self.weights[-1])

    def extra_repr(self):
        return f"kinds={self.kinds}, width={self.width}, depth={self.depth}, groups={self.groups}"


@torch.no_grad()
def batched_accuracy(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Accuracy when the samples are fed in batches of exactly `batch`: a random partition, each sample scored
    once; the last batch is filled up with samples from the start. logits_fn: (B, D) -> (..., B, C)."""
    n = len(x)
    n_batches = math.ceil(n / batch)
    perm = torch.randperm(n, generator=generator)
    idx = perm.repeat(math.ceil(n_batches * batch / n))[: n_batches * batch]
    correct = 0.0
    for i in range(n_batches):
        check_cancelled()
        sel = idx[i * batch : (i + 1) * batch]
        hit = (logits_fn(x[sel]).argmax(-1) == y[sel]).float()  # (..., B)
        correct = correct + hit[..., : min(batch, n - i * batch)].sum(-1)
    return correct / n


@dataclass
class BatchSizeResult:
    spec: BatchSizeSpec
    norms: list[str]  # in the order of spec.norms
    sizes: np.ndarray  # (S,) ascending
    steps: np.ndarray  # (S,) steps each batch size trains for
    lr: np.ndarray  # (S,) learning rate used at each batch size
    test_acc: np.ndarray  # (N, S) eval mode (running stats); NaN: not trained yet or diverged
    train_mode_acc: np.ndarray  # (N, S) train mode, test set in batches of the training batch size
    diverged_at: list  # (N, S) step or None
    stream_batch: np.ndarray  # (T,) batch size of each stream step
    stream_loss: np.ndarray  # (T, N) training loss; NaN where the model skipped the step
    stream_eval_steps: np.ndarray  # (E,)
    stream_acc: np.ndarray  # (E, N) test accuracy in eval mode
    stream_skipped: list  # (N,) steps skipped (batch of one for batch-statistics norms)
    stream_diverged_at: list  # (N,)
    steps_done: int = 0
    total_steps: int = 1
    done: bool = False

    @property
    def progress(self) -> float:
        return min(self.steps_done / self.total_steps, 1.0)

    def summary(self) -> dict:
        """The JSON the CLI writes."""
        return {
            "sizes": self.sizes.tolist(),
            "lr_scaling": self.spec.lr_scaling,
            "lr": self.lr.tolist(),  # the learning rate each batch size trained with
            "steps": self.steps.tolist(),
            "test_acc": {kind: self.test_acc[i].tolist() for i, kind in enumerate(self.norms)},
        }


def steps_for(spec: BatchSizeSpec, n_train: int, batch: int) -> int:
    return max(1, spec.epochs * n_train // batch)


def lr_for(spec: BatchSizeSpec, batch: int) -> float:
    return spec.lr * batch / REF_BATCH if spec.lr_scaling == "linear" else spec.lr


def make_stack(spec: BatchSizeSpec, n_in: int, n_out: int, generator: torch.Generator) -> NormStack:
    return NormStack(
        n_in,
        n_out,
        spec.norms,
        spec.depth,
        spec.width,
        spec.activation,
        spec.norm_place,
        spec.init,
        spec.init_std,
        spec.groups,
        spec.momentum,
        spec.rmax,
        spec.dmax,
        generator=generator,
    )


def run(spec: BatchSizeSpec) -> Iterator[BatchSizeResult]:
    """The sweep (largest batch first: it is quickest), then the stream; yields partial results."""
    data = load_checked(spec)
    x, y, n = data.x_train, data.y_train, len(data.x_train)
    too_big = [b for b in spec.sizes if b > n]
    if too_big:
        raise SpecError(f"sizes: batch size {too_big[0]} is larger than the {n} training samples")
    sizes = np.array(sorted(spec.sizes))
    kinds = stack_order(spec.norms)
    to_out = [kinds.index(k) for k in spec.norms]  # stack row of each output row
    n_norms, n_sizes = len(kinds), len(sizes)
    steps = np.array([steps_for(spec, n, b) for b in sizes])
    test_acc = np.full((n_norms, n_sizes), np.nan, np.float32)
    train_acc = np.full((n_norms, n_sizes), np.nan, np.float32)
    diverged = [[None] * n_sizes for _ in range(n_norms)]
    stream = _Stream(spec, data, to_out)
    total, done_steps, throttle = int(steps.sum()) + spec.stream_steps, 0, Throttle()

    def snapshot(done=False) -> BatchSizeResult:
        return BatchSizeResult(
            spec,
            list(spec.norms),
            sizes,
            steps,
            np.array([lr_for(spec, b) for b in sizes]),
            test_acc.copy(),
            train_acc.copy(),
            [list(r) for r in diverged],
            *stream.arrays(),
            steps_done=done_steps,
            total_steps=total,
            done=done,
        )

    for i in reversed(range(n_sizes)):
        batch = int(sizes[i])
        gen = torch.Generator().manual_seed(spec.seed)
        model = make_stack(spec, data.n_features, data.n_classes, gen)
        trainer = StackedTrainer(model, x, y, optimizer="sgd", lr=lr_for(spec, batch), batch_size=batch, generator=gen)
        for _ in range(int(steps[i])):
            trainer.step()
            done_steps += 1
            if trainer.all_diverged:
                break
            if throttle.due():
                yield snapshot()
        done_steps += int(steps[i]) - trainer.step_count
        ok = np.array([d is None for d in trainer.diverged_at])
        test_acc[:, i] = np.where(ok, accuracy(model, data.x_test, data.y_test).numpy(), np.nan)[to_out]
        probe = batched_accuracy(
            lambda xb: model(xb, "probe"),  # noqa: B023
            data.x_test,
            data.y_test,
            batch,
            torch.Generator().manual_seed(spec.seed),
        )
        train_acc[:, i] = np.where(ok, probe.numpy(), np.nan)[to_out]
        for j, s in enumerate(to_out):
            diverged[j][i] = trainer.diverged_at[s]
        yield snapshot()
    for _ in stream.steps():
        done_steps += 1
        if throttle.due():
            yield snapshot()
    yield snapshot(done=True)


STREAM_EVAL_EVERY = 10


class _Stream:
    """Online learning: every step draws its batch size from 1..stream_max_batch.

    A batch of one cannot be normalised by its own batch statistics (torch refuses in train mode), so the
    BN and Batch Renorm models skip that step; LayerNorm and GroupNorm normalise each sample on its own
    and train on it like on any batch. The learning rate follows the batch size (lr * B / 32).
    """

    def __init__(self, spec: BatchSizeSpec, data, to_out: list[int]):
        self.spec, self.data, self.to_out = spec, data, to_out
        self.gen = torch.Generator().manual_seed(spec.seed)
        self.model = make_stack(spec, data.n_features, data.n_classes, self.gen)
        self.kinds = self.model.kinds
        self.batch_stat = torch.tensor([k in BATCH_STAT_NORMS for k in self.kinds])
        top = min(spec.stream_max_batch, len(data.x_train))
        self.batches = torch.randint(1, top + 1, (spec.stream_steps,), generator=self.gen)
        self.loss, self.eval_steps, self.acc = [], [], []
        self.skipped = [0] * self.model.k
        self.diverged_at: list[int | None] = [None] * self.model.k

    def arrays(self):
        k, out = self.model.k, self.to_out
        loss = np.array(self.loss, np.float32).reshape(-1, k)[:, out]
        acc = np.array(self.acc, np.float32).reshape(-1, k)[:, out]
        return (
            self.batches[: len(self.loss)].numpy(),
            loss,
            np.array(self.eval_steps, np.int64),
            acc,
            [self.skipped[i] for i in out],
            [self.diverged_at[i] for i in out],
        )

    def _evaluate(self, step: int):
        acc = accuracy(self.model, self.data.x_test, self.data.y_test).numpy()
        acc[[d is not None for d in self.diverged_at]] = np.nan
        self.eval_steps.append(step)
        self.acc.append(acc)

    def steps(self) -> Iterator[int]:
        x, y, n = self.data.x_train, self.data.y_train, len(self.data.x_train)
        opt = torch.optim.SGD(self.model.parameters(), lr=self.spec.lr)
        order, pos = torch.randperm(n, generator=self.gen), 0
        self._evaluate(0)
        for t, b in enumerate(self.batches.tolist(), start=1):
            check_cancelled()
            if pos + b > n:
                order, pos = torch.randperm(n, generator=self.gen), 0
            idx, pos = order[pos : pos + b], pos + b
            skip = b == 1 and bool(self.batch_stat.any())
            losses = stacked_cross_entropy(self.model(x[idx], "train", skip_batch_stats=skip), y[idx])  # (K,)
            keep = mark_diverged(losses, self.diverged_at, t) & ~(self.batch_stat & skip)
            if skip:
                for i in torch.nonzero(self.batch_stat).flatten().tolist():
                    self.skipped[i] += 1
            if keep.any():
                for group in opt.param_groups:
                    group["lr"] = lr_for(self.spec, b)
                opt.zero_grad()
                losses[keep].sum().backward()
                opt.step()
            self.loss.append(torch.where(keep, losses.detach(), torch.nan).numpy())
            if t % STREAM_EVAL_EVERY == 0 or t == len(self.batches):
                self._evaluate(t)
            yield t
