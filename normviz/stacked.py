"""K MLPs of one shape trained as one computation: stacked weights (K, fan_in, fan_out) and bmm.

The first `n_bn` models of the stack have BatchNorm in every hidden block, the rest have none.
All models start from one random draw of weights, scaled by each model's init std, so a
"BN vs no BN" pair starts from identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from normviz.layers import RunningStats, check_batch, normalize

ACTIVATION_FNS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": nn.functional.gelu,
    "linear": lambda x: x,
}

# what every hidden block records for telemetry: Linear output, after the norm, after the activation
BlockRecorder = Callable[[int, dict[str, torch.Tensor]], None]


def init_std(init: str, fan_in: int, std: float) -> float:
    """The weight std of an init scheme: a plain std (DLfS), Xavier sqrt(1/n) or He sqrt(2/n)."""
    return {"std": std, "xavier": math.sqrt(1.0 / fan_in), "he": math.sqrt(2.0 / fan_in)}[init]


@dataclass(frozen=True)
class StackShape:
    n_in: int
    n_out: int
    depth: int
    width: int
    activation: str = "relu"
    norm_place: str = "before"  # BN before or after the activation


class StackedMLP(nn.Module):
    def __init__(self, shape: StackShape, init_stds: list[float] | None = None, n_bn: int = 0, *,
                 weight_init: str = "std", generator: torch.Generator | None = None, eps: float = 1e-5,
                 **running_kwargs):
        """`init_stds` has one entry per model (used when weight_init == 'std'); its length is K.
        `running_kwargs` go to each layer's RunningStats (momenta, init, var_estimator, ...)."""
        super().__init__()
        init_stds = init_stds or [0.01]
        self.shape, self.k, self.n_bn, self.eps = shape, len(init_stds), n_bn, eps
        self.act = ACTIVATION_FNS[shape.activation]
        sizes = [shape.n_in] + [shape.width] * shape.depth + [shape.n_out]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            stds = torch.tensor([init_std(weight_init, fan_in, s) for s in init_stds]).reshape(-1, 1, 1)
            base = torch.randn(1, fan_in, fan_out, generator=generator)
            self.weights.append(nn.Parameter(base * stds))  # (K, fan_in, fan_out)
            self.biases.append(nn.Parameter(torch.zeros(self.k, 1, fan_out)))  # (K, 1, fan_out)
        self.gammas = nn.ParameterList(nn.Parameter(torch.ones(n_bn, 1, shape.width)) for _ in range(shape.depth))
        self.betas = nn.ParameterList(nn.Parameter(torch.zeros(n_bn, 1, shape.width)) for _ in range(shape.depth))
        self.stats = nn.ModuleList(RunningStats((n_bn, shape.width), **running_kwargs) for _ in range(shape.depth))

    def _bn(self, layer: int, h: torch.Tensor, mode: str, eval_row: int) -> torch.Tensor:
        """BatchNorm of the (n_bn, B, C) slice; mode 'train' updates the running stats, 'probe' does not."""
        if mode == "eval":
            mean, var = self.stats[layer].estimate(eval_row)
            mean, var = mean.unsqueeze(1), var.unsqueeze(1)  # (n_bn, 1, C)
        else:
            check_batch(h, (1,))
            var, mean = torch.var_mean(h, dim=1, keepdim=True, unbiased=False)  # (n_bn, 1, C)
            if mode == "train":
                self.stats[layer].update(mean.squeeze(1).detach(), var.squeeze(1).detach(), h.shape[1])
        return normalize(h, mean, var, self.eps) * self.gammas[layer] + self.betas[layer]

    def _norm(self, layer: int, h: torch.Tensor, mode: str, eval_row: int) -> torch.Tensor:
        if self.n_bn == 0:
            return h
        normed = self._bn(layer, h[: self.n_bn], mode, eval_row)
        return torch.cat([normed, h[self.n_bn:]]) if self.n_bn < self.k else normed

    def forward(self, x: torch.Tensor, mode: str = "train", record: BlockRecorder | None = None,
                eval_row: int = 0) -> torch.Tensor:
        """x (B, n_in) -> logits (K, B, n_out). mode: 'train', 'eval' (running stats) or 'probe'
        (batch statistics without touching the running stats)."""
        h = torch.matmul(x, self.weights[0]) + self.biases[0]  # (K, B, width)
        for layer in range(self.shape.depth):
            if layer:
                h = torch.baddbmm(self.biases[layer], h, self.weights[layer])
            if self.shape.norm_place == "before":
                normed = self._norm(layer, h, mode, eval_row)
                out = activated = self.act(normed)
            else:
                activated = self.act(h)
                out = normed = self._norm(layer, activated, mode, eval_row)
            if record is not None:
                record(layer, {"linear": h, "norm": normed, "act": activated})
            h = out
        return torch.baddbmm(self.biases[-1], h, self.weights[-1])

    def extra_repr(self):
        s = self.shape
        return f"K={self.k} (BN on the first {self.n_bn}), {s.n_in}-{s.width}x{s.depth}-{s.n_out}, {s.activation}"


def stacked_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-model mean cross-entropy: logits (K, B, C), y (B,) -> (K,)."""
    k, b, c = logits.shape
    return nn.functional.cross_entropy(logits.reshape(k * b, c), y.repeat(k), reduction="none").reshape(k, b).mean(1)


def make_optimizer(params, name: str, lr: float, sgd_momentum: float = 0.0) -> torch.optim.Optimizer:
    """SGD and Adam are elementwise, so one optimizer over stacked weights equals K separate ones."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=sgd_momentum)
