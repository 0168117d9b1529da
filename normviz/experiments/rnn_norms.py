"""Norms in a recurrent net: RowRNN reads each digit row by row (8 steps) with per-time-step BatchNorm,
with LayerNorm, or with no norm; then reads sequences longer than any it was trained on.

    python -m normviz alternatives --view rnn --steps 300 --json rnn.json

Per-time-step BN must keep one set of running statistics per step; at a step beyond the training length
it has none. RowRNN refuses such a sequence unless told to reuse the last step's statistics, which we do
to show what that costs. LayerNorm uses each sample's own statistics at every step and needs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from normviz.config import Spec
from normviz.experiments.norm_zoo import batch_param, digits, lr_param, probe_schedule, steps_param
from normviz.models import RowRNN, rows_as_sequence
from normviz.runs import Throttle
from normviz.train import BatchSampler

NORMS = ("none", "batch", "layer")
HIDDEN, TRAIN_STEPS = 64, 8  # hidden units; time steps in training (one per image row)
REPEATS = (1, 2, 3)  # test sequences: the image read 1, 2, 3 times (8, 16, 24 steps)


@dataclass(frozen=True)
class RNNSpec(Spec):
    """RowRNN on the digits: batch size, steps, learning rate."""

    batch_size: int = batch_param()
    steps: int = steps_param()
    lr: float = lr_param()


@dataclass
class RNNResult:
    spec: RNNSpec
    steps_done: int = 0
    done: bool = False
    loss: np.ndarray = field(default_factory=lambda: np.zeros((0, len(NORMS)), np.float32))  # (S, 3)
    probe_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    test_acc: np.ndarray = field(default_factory=lambda: np.zeros((0, len(NORMS)), np.float32))  # (T, 3) eval
    bn_mean: np.ndarray | None = None  # (8, HIDDEN) running mean BN keeps for each time step
    bn_var: np.ndarray | None = None  # (8, HIDDEN) running variance per time step
    long_acc: dict = field(default_factory=dict)  # norm -> [acc at 8, 16, 24 steps]; BN reuses step 7's stats
    refusal: str = ""  # what RowRNN says when asked for step 8 with per-step BN
    shift: np.ndarray | None = None  # (24,) RMS over units of (test mean - BN's mean) / BN's std, per step
    std_ratio: np.ndarray | None = None  # (24,) geometric mean over units of test std / BN's std, per step
    seen_std: np.ndarray | None = None  # (24,) mean over units of the pre-norm std on the test set, per step
    used_std: np.ndarray | None = None  # (24,) mean over units of the running std BN divides by, per step

    @property
    def progress(self) -> float:
        return self.steps_done / self.spec.steps

    def summary(self) -> dict:
        out = {
            "spec": self.spec.to_dict(),
            "norms": list(NORMS),
            "steps_done": self.steps_done,
            "sequence_lengths": [TRAIN_STEPS * r for r in REPEATS],
            "test_acc": {n: self.test_acc[-1, k].item() for k, n in enumerate(NORMS)} if len(self.test_acc) else {},
            "long_sequence_acc": self.long_acc,
            "bn_refusal": self.refusal,
        }
        if self.bn_mean is not None:
            out["bn_per_step"] = {"mean": self.bn_mean.tolist(), "var": self.bn_var.tolist()}
            out["bn_mismatch"] = {
                "shift": self.shift.tolist(),
                "std_ratio": self.std_ratio.tolist(),
                "seen_std": self.seen_std.tolist(),
                "used_std": self.used_std.tolist(),
            }
        return out


@torch.no_grad()
def accuracy(model: RowRNN, x: torch.Tensor, y: torch.Tensor, repeat: int = 1) -> float:
    model.eval()
    acc = (model(rows_as_sequence(x, repeat), reuse_last_stats=True).argmax(1) == y).float().mean().item()
    model.train()
    return acc


@torch.no_grad()
def bn_mismatch(model: RowRNN, x: torch.Tensor, repeat: int) -> dict[str, np.ndarray]:
    """Per time step, in eval mode: how far the test batch's pre-norm statistics are from the running ones
    BN normalises them with (its own step's, or step 7's beyond the training length).

    shift: RMS over units of (mean - running mean) / running std; std_ratio: geometric mean over units of
    std / running std; seen_std, used_std: mean over units of the test batch's std and of the running std."""
    seen = []  # one (B, H) input per call, in time order
    hooks = [n.register_forward_pre_hook(lambda m, args: seen.append((m, args[0]))) for n in model.norms]
    model.eval()
    model(rows_as_sequence(x, repeat), reuse_last_stats=True)
    model.train()
    for h in hooks:
        h.remove()
    out = {"shift": [], "std_ratio": [], "seen_std": [], "used_std": []}
    for norm, h in seen:
        mean, var = norm.stats.estimate()
        std, h_std = (var + norm.eps).sqrt(), h.std(0, unbiased=False)
        out["shift"].append(((h.mean(0) - mean) / std).pow(2).mean().sqrt().item())
        out["std_ratio"].append((h_std / std).log().mean().exp().item())
        out["seen_std"].append(h_std.mean().item())
        out["used_std"].append(std.mean().item())
    return {k: np.array(v) for k, v in out.items()}


def run(spec: RNNSpec) -> Iterator[RNNResult]:
    data = digits(spec.seed)
    models = [
        RowRNN(data.n_classes, HIDDEN, n, TRAIN_STEPS, generator=torch.Generator().manual_seed(spec.seed))
        for n in NORMS
    ]
    opts = [torch.optim.Adam(m.parameters(), lr=spec.lr) for m in models]
    sampler = BatchSampler(
        len(data.x_train), min(spec.batch_size, len(data.x_train)), torch.Generator().manual_seed(spec.seed)
    )
    losses, probe_steps, test_acc = [], [], []
    probes, throttle = probe_schedule(spec.steps), Throttle()

    def record(step):
        probe_steps.append(step)
        test_acc.append([accuracy(m, data.x_test, data.y_test) for m in models])

    def snapshot(step):
        return RNNResult(
            spec,
            step,
            False,
            np.array(losses, np.float32).reshape(-1, len(NORMS)),
            np.array(probe_steps),
            np.array(test_acc, np.float32).reshape(-1, len(NORMS)),
        )

    record(0)
    yield snapshot(0)
    for step in range(1, spec.steps + 1):
        idx = sampler.next()
        xb, yb = rows_as_sequence(data.x_train[idx]), data.y_train[idx]
        row = []
        for model, opt in zip(models, opts):
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # the usual RNN guard against exploding gradients
            opt.step()
            row.append(loss.item())
        losses.append(row)
        if step in probes:
            record(step)
        if throttle.due():
            yield snapshot(step)
    result = snapshot(spec.steps)
    bn = models[NORMS.index("batch")]
    result.bn_mean = torch.stack([n.stats.estimate()[0] for n in bn.norms]).numpy()
    result.bn_var = torch.stack([n.stats.estimate()[1] for n in bn.norms]).numpy()
    try:
        bn.eval()
        bn(rows_as_sequence(data.x_test[:4], 2))
    except ValueError as exc:
        result.refusal = str(exc)
    finally:
        bn.train()
    result.long_acc = {n: [accuracy(m, data.x_test, data.y_test, r) for r in REPEATS] for n, m in zip(NORMS, models)}
    m = bn_mismatch(bn, data.x_test, max(REPEATS))
    result.shift, result.std_ratio, result.seen_std, result.used_std = (m[k] for k in m)
    result.done = True
    yield result
