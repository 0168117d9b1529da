"""What a norm costs: time per training step with each norm, and the share of it spent in the norm layers,
measured live by ablation (the same step with the norm layers replaced by identities).

    python -m normviz alternatives --view cost --model cnn --cost-batch-sizes 16,64,256 --json cost.json

Each configuration is timed in several rounds, interleaved with the others, and the fastest round counts:
on a shared machine the slow rounds measure the other programs, not the model. With one torch thread (as
the app runs) the clock is the CPU time of that thread, which other programs cannot inflate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from normviz.config import Spec, param
from normviz.experiments.norm_zoo import build, digits, groups_param, model_param, norms_for
from normviz.layers import NORM_LABELS, group_count
from normviz.runs import Throttle
from normviz.runtime import check_cancelled

try:  # counting the tensor operations a step runs; a private torch module, so optional
    from torch.utils._python_dispatch import TorchDispatchMode
except ImportError:  # pragma: no cover
    TorchDispatchMode = None

ROUNDS, STEPS_PER_ROUND, WARMUP = 12, 1, 2  # many short rounds: the fastest one most likely ran alone
IMPLS = ("ours", "torch")  # our written-out layers, torch's built-in (fused) modules


@dataclass(frozen=True)
class CostSpec(Spec):
    """Which model, which batch sizes."""

    model: str = model_param()
    cost_batch_sizes: tuple[int, ...] = param(
        (16, 64, 256), "batch sizes to time one training step at", lo=2, hi=1024, label="Cost: batch sizes"
    )
    groups: int = groups_param()


def torch_norm(kind: str, channels: int, groups: int, conv: bool) -> nn.Module | None:
    """torch's own module for a norm kind (None where torch has none: Batch Renorm)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
    if kind == "layer":  # over (C, H, W) with per-channel gamma/beta, as ours: GroupNorm with one group
        return nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind in ("group", "group+ws"):
        return nn.GroupNorm(group_count(channels, groups), channels)
    return None


def with_torch_norms(model: nn.Module, norm: str, groups: int, conv: bool) -> nn.Module | None:
    """The same model with its norm layers swapped for torch's built-in modules (None if torch has none)."""
    kind = "group" if norm == "group+ws" else norm
    for block in model.blocks:
        channels = block.linear.weight.shape[0]
        replacement = torch_norm(kind, channels, groups, conv)
        if replacement is None:
            return None
        block.norm = replacement
    return model


def configurations(spec: CostSpec) -> list[tuple[str, str]]:
    """(norm, impl) pairs to time: every norm with our layers, then the ones torch has as built-ins."""
    norms = norms_for(spec.model)
    ours = [(n, "ours") for n in norms]
    return ours + [(n, "torch") for n in norms if n not in ("none", "renorm")]  # torch has no Batch Renorm


@dataclass
class CostResult:
    spec: CostSpec
    configs: list  # [(norm, impl)]
    batch_sizes: tuple
    ms: np.ndarray  # (K, NB) fastest round's mean ms per training step; NaN until measured
    ms_median: np.ndarray  # (K, NB) median over rounds: how noisy the machine was
    ops: np.ndarray  # (K,) tensor operations in one forward + backward pass (0 if not countable)
    rounds_done: int = 0
    done: bool = False

    @property
    def progress(self) -> float:
        return self.rounds_done / (ROUNDS * len(self.batch_sizes))

    def baseline(self) -> np.ndarray:
        """(NB,) ms per step of the same model without any norm layer."""
        return self.ms[self.configs.index(("none", "ours"))]

    def share(self) -> np.ndarray:
        """(K, NB) share of the step spent in norm layers: 1 - t(no norm) / t(with the norm)."""
        return 1.0 - self.baseline()[None, :] / self.ms

    def table(self) -> list[dict]:
        rows, share = [], self.share()
        for k, (norm, impl) in enumerate(self.configs):
            if norm == "none":
                continue
            row = {
                "norm": NORM_LABELS.get(norm, norm),
                "layers": "written out (normviz)" if impl == "ours" else "torch built-in",
                "tensor ops per step": int(self.ops[k]),
            }
            for j, b in enumerate(self.batch_sizes):
                row[f"ms/step, batch {b}"] = _num(self.ms[k, j])
                row[f"share in norm, batch {b}"] = _num(share[k, j])
            rows.append(row)
        return rows

    def summary(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "batch_sizes": list(self.batch_sizes),
            "no_norm_ms": [_num(v) for v in self.baseline()],
            "no_norm_ops": int(self.ops[self.configs.index(("none", "ours"))]),
            "table": self.table(),
            "threads": torch.get_num_threads(),
            "clock": "thread CPU time" if torch.get_num_threads() == 1 else "wall time",
        }


def _num(v) -> float | None:
    return float(v) if np.isfinite(v) else None


class _OpCounter(TorchDispatchMode or object):
    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def count_ops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Tensor operations (ATen calls) of one forward and backward pass; 0 where torch cannot count them."""
    if TorchDispatchMode is None:
        return 0
    with _OpCounter() as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad()
    return counter.n


def clock() -> float:
    """Seconds: this thread's CPU time when torch computes on it alone, else wall time."""
    return time.thread_time() if torch.get_num_threads() == 1 else time.perf_counter()


def _trainer(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def run(spec: CostSpec) -> Iterator[CostResult]:
    """Time every configuration at every batch size; yields after each round."""
    data = digits(spec.seed)
    configs = configurations(spec)
    conv = spec.model == "cnn"
    sizes = spec.cost_batch_sizes
    ms = np.full((len(configs), len(sizes)), np.nan)
    med = ms.copy()
    ops = np.zeros(len(configs), np.int64)
    throttle, done = Throttle(), 0
    gen = torch.Generator().manual_seed(spec.seed)
    for j, b in enumerate(sizes):
        idx = torch.randint(0, len(data.x_train), (b,), generator=gen)
        x, y = data.x_train[idx], data.y_train[idx]
        steps = []
        for k, (norm, impl) in enumerate(configs):
            model = build(spec.model, norm, spec.groups, spec.seed)
            if impl == "torch":
                model = with_torch_norms(model, norm, spec.groups, conv)
            if j == 0:
                ops[k] = count_ops(model, x, y)
            steps.append(_trainer(model, x, y))
        for step in steps:
            for _ in range(WARMUP):
                step()
        per_round = np.zeros((ROUNDS, len(configs)))
        for r in range(ROUNDS):
            for k, step in enumerate(steps):
                check_cancelled()  # timing steps draw no batches from a sampler
                start = clock()
                for _ in range(STEPS_PER_ROUND):
                    step()
                per_round[r, k] = (clock() - start) / STEPS_PER_ROUND * 1e3
            ms[:, j] = per_round[: r + 1].min(0)
            med[:, j] = np.median(per_round[: r + 1], 0)
            done += 1
            if throttle.due():
                yield CostResult(spec, configs, sizes, ms.copy(), med.copy(), ops, done)
    yield CostResult(spec, configs, sizes, ms, med, ops, done, True)
