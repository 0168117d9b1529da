"""SyncBN, simulated: a global batch split over W workers of b samples each. Per-worker BN normalises every
sub-batch with its own statistics (what plain BN does under data parallelism); synchronized BN gathers every
worker's per-channel (mean, variance, count) and combines them, so every worker normalises with the statistics of
all W*b samples.

    python -m normviz alternatives --view sync-bn --workers 8 --sub-batches 1,2,4,8,16 --model mlp --json sync.json
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from normviz.config import Spec, SpecError, param
from normviz.experiments.norm_zoo import build, digits, eval_accuracy, lr_param, model_param, steps_param
from normviz.layers import BatchNorm, check_batch, normalize
from normviz.runs import Throttle
from normviz.train import BatchSampler

MODES = ("local", "sync")  # per-worker BN, synchronized BN
NOISE_DRAWS = 300


def combine_stats(mean: torch.Tensor, var: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The statistics of the whole batch from each worker's (mean, biased var) over n values: (1, C), (1, C), W*n.

    The parallel (Chan et al.) combination, as torch's batch_norm_gather_stats_with_counts does; S2/N - mu^2
    would cancel catastrophically when the mean is large against the spread (mean 1000, std 1 in float32).
    """
    total = mean.mean(0, keepdim=True)  # equal counts: the mean of the worker means
    spread = (var + (mean - total) ** 2).mean(0, keepdim=True)  # within-worker plus between-worker variance
    return total, spread, n * mean.shape[0]


class WorkerBatchNorm(BatchNorm):
    """BatchNorm of a batch made of `workers` equal sub-batches, one per simulated device.

    sync=False: each worker normalises its sub-batch with that sub-batch's statistics; the running statistics
    follow worker 0 (DDP broadcasts rank 0's buffers). sync=True: as torch's SyncBatchNorm, every worker's
    (mean, biased var, count) is gathered and combined, giving the statistics of the whole batch, as BatchNorm on it.
    Eval mode is plain BatchNorm with the running statistics.
    """

    def __init__(self, num_features: int, workers: int, sync: bool, **kwargs):
        super().__init__(num_features, **kwargs)
        self.workers, self.sync = workers, sync

    def worker_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(mean, biased variance, count) per worker and channel: (W, C), (W, C), values per worker."""
        if x.shape[0] % self.workers:
            raise ValueError(f"a batch of {x.shape[0]} does not split into {self.workers} equal sub-batches")
        xs = x.reshape(self.workers, -1, *x.shape[1:])  # (W, b, C, *spatial)
        dims = (1,) + tuple(range(3, xs.dim()))
        var, mean = torch.var_mean(xs, dim=dims, unbiased=False)
        return mean, var, xs.numel() // (self.workers * x.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        mean, var, n = self.worker_stats(x)  # (W, C), (W, C), values per channel on one worker
        if self.sync:
            mean, var, n = combine_stats(mean, var, n)
        else:  # one worker's sub-batch must have more than one value per channel, as for BatchNorm
            check_batch(x[: x.shape[0] // self.workers], (0,) + tuple(range(2, x.dim())))
        self.stats.update(mean[0].detach(), var[0].detach(), n)
        xs = x.reshape(self.workers, -1, *x.shape[1:])  # (W, b, C, *spatial)
        shape = (mean.shape[0], 1, -1) + (1,) * (x.dim() - 2)
        y = normalize(xs, mean.reshape(shape), var.reshape(shape), self.eps).reshape(x.shape)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)

    def extra_repr(self):
        return f"{super().extra_repr()}, workers={self.workers}, sync={self.sync}"


def distributed(model: nn.Module, workers: int, sync: bool) -> nn.Module:
    """`model` with every BatchNorm replaced by a WorkerBatchNorm holding the same parameters and buffers."""
    for block in model.blocks:
        old = block.norm
        new = WorkerBatchNorm(old.num_features, workers, sync, eps=old.eps)
        new.load_state_dict(old.state_dict())
        block.norm = new
    return model


@dataclass(frozen=True)
class SyncBNSpec(Spec):
    """W workers, several per-worker batch sizes b, per-worker vs synchronized BN."""

    model: str = model_param()
    workers: int = param(8, "simulated workers (devices) W", lo=2, hi=32, label="SyncBN: workers W")
    sub_batches: tuple[int, ...] = param(
        (1, 2, 4, 8), "per-worker batch sizes b to compare", lo=1, hi=128, label="SyncBN: per-worker batches b"
    )
    steps: int = steps_param()
    lr: float = lr_param()

    def validate(self):
        super().validate()
        if max(self.sub_batches) * self.workers > 1024:
            raise SpecError(
                f"sub_batches: W*b must stay at most 1,024 (W={self.workers}, largest b={max(self.sub_batches)})"
            )


@dataclass
class SyncBNResult:
    spec: SyncBNSpec
    sub_batches: tuple
    values_per_channel: np.ndarray  # (NB,) values one worker's BN averages over, per channel
    noise_mean: np.ndarray  # (2, NB) RMS error of the batch mean, in population stds (local: b, sync: W*b samples)
    noise_var: np.ndarray  # (2, NB) median relative error |var_B / var - 1| of the (biased) batch variance
    test_acc: np.ndarray  # (2, NB) eval mode; NaN: not trained yet, refused or diverged
    final_loss: np.ndarray  # (2, NB) mean training loss of the last 20 steps
    notes: dict = field(default_factory=dict)  # "local b=1" -> why it did not train
    b_done: int = 0
    done: bool = False

    @property
    def progress(self) -> float:
        return self.b_done / len(self.sub_batches)

    def summary(self) -> dict:
        out = {
            "spec": self.spec.to_dict(),
            "sub_batches": list(self.sub_batches),
            "workers": self.spec.workers,
            "values_per_channel": self.values_per_channel.tolist(),
            "notes": self.notes,
        }
        for i, mode in enumerate(MODES):
            out[mode] = {
                "test_acc": self.test_acc[i].tolist(),
                "final_loss": self.final_loss[i].tolist(),
                "noise_mean": self.noise_mean[i].tolist(),
                "noise_var": self.noise_var[i].tolist(),
            }
        return out


@torch.no_grad()
def first_norm_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the first norm layer sees for every sample: (N, C) or (N, C, H, W)."""
    seen = []
    handle = model.blocks[0].norm.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.eval()
    model(x)
    model.train()
    handle.remove()
    return seen[0]


def statistic_noise(h: torch.Tensor, sizes: list[int], draws: int, gen: torch.Generator) -> tuple[np.ndarray, ...]:
    """For random batches of m samples, per size: the RMS (over batches and channels) of the batch mean's error
    (mean_m - mean) / std, and the median of the batch variance's relative error |var_m / var - 1| (biased, as
    BN uses it; the median, because a few extreme batches would dominate a mean of squares)."""
    per_sample = h.reshape(h.shape[0], h.shape[1], -1).double()  # (N, C, P)
    p = per_sample.shape[2]
    s1, s2 = per_sample.sum(2), (per_sample**2).sum(2)  # (N, C)
    mean, var = s1.sum(0) / (len(h) * p), (s2.sum(0) / (len(h) * p) - (s1.sum(0) / (len(h) * p)) ** 2)
    keep = var > 1e-12  # a channel that never varies has no noise to speak of
    mean, var, s1, s2 = mean[keep], var[keep], s1[:, keep], s2[:, keep]
    out_mean, out_var = [], []
    for m in sizes:
        idx = torch.rand(draws, len(h), generator=gen).argsort(1)[:, :m]  # (D, m) without replacement
        bm = s1[idx].sum(1) / (m * p)  # (D, C)
        bv = s2[idx].sum(1) / (m * p) - bm**2
        out_mean.append(((bm - mean) / var.sqrt()).pow(2).mean().sqrt().item())
        out_var.append((bv / var - 1).abs().median().item())
    return np.array(out_mean), np.array(out_var)


def run(spec: SyncBNSpec) -> Iterator[SyncBNResult]:
    """Noise of the statistics first (no training needed), then one training run per (b, mode)."""
    data = digits(spec.seed)
    w, sizes = spec.workers, spec.sub_batches
    nb = len(sizes)
    gen = torch.Generator().manual_seed(spec.seed)
    h = first_norm_input(build(spec.model, "batch", 4, spec.seed), data.x_train)
    p = h[0, 0].numel()
    local_mean, local_var = statistic_noise(h, list(sizes), NOISE_DRAWS, gen)
    sync_mean, sync_var = statistic_noise(h, [w * b for b in sizes], NOISE_DRAWS, gen)
    acc, loss = np.full((2, nb), np.nan), np.full((2, nb), np.nan)
    notes: dict[str, str] = {}
    throttle = Throttle()

    def snapshot(done_b, done):
        return SyncBNResult(
            spec,
            sizes,
            np.array(sizes) * p,
            np.stack([local_mean, sync_mean]),
            np.stack([local_var, sync_var]),
            acc.copy(),
            loss.copy(),
            dict(notes),
            done_b,
            done,
        )

    yield snapshot(0, False)
    for j, b in enumerate(sizes):
        models = [distributed(build(spec.model, "batch", 4, spec.seed), w, mode == "sync") for mode in MODES]
        opts = [torch.optim.Adam(m.parameters(), lr=spec.lr) for m in models]
        sampler = BatchSampler(len(data.x_train), w * b, torch.Generator().manual_seed(spec.seed))
        alive, losses = [True, True], [[], []]
        for step in range(1, spec.steps + 1):
            idx = sampler.next()
            for i, (model, opt) in enumerate(zip(models, opts)):
                if not alive[i]:
                    continue
                try:
                    out = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
                except ValueError as exc:  # a per-worker BN1d with one sample: torch refuses, so do we
                    alive[i], notes[f"{MODES[i]} b={b}"] = False, str(exc)
                    continue
                if not torch.isfinite(out):
                    alive[i], notes[f"{MODES[i]} b={b}"] = False, f"diverged at step {step}"
                    continue
                opt.zero_grad()
                out.backward()
                opt.step()
                losses[i].append(out.item())
            if throttle.due():
                yield snapshot(j, False)
        for i, model in enumerate(models):
            if alive[i]:
                acc[i, j] = eval_accuracy(model, data.x_test, data.y_test)
                loss[i, j] = float(np.mean(losses[i][-20:]))
        yield snapshot(j + 1, j + 1 == nb)
