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

from normviz.layers import ACTIVATION_FORMS, RunningStats, check_batch, normalize

# what every hidden block records for telemetry: Linear output, after the norm, after the activation
BlockRecorder = Callable[[int, dict[str, torch.Tensor]], None]


def init_std(init: str, fan_in: int, std: float) -> float:
    """The weight std of an init scheme: a plain std (DLfS), Xavier sqrt(1/n) or He sqrt(2/n)."""
    return {"std": std, "xavier": math.sqrt(1.0 / fan_in), "he": math.sqrt(2.0 / fan_in)}[init]


class _StackedBatchNorm(torch.autograd.Function):
    """Train-mode BN over dim 1 of the first n models of (K, B, C), identity on the others, as one
    autograd node with the closed-form backward. Returns (output, batch mean, biased batch var) of
    the n BN models; the statistics carry no gradient. With `overwrite` the output is written into
    the input; with `relu` (which needs `overwrite`) ReLU follows on all K models in the same node,
    so the backward pass masks the gradient and normalizes it in one buffer.

    Measured against var_mean + normalize + torch.cat (bench/): torch.var_mean over the middle dim
    took 1.4 ms of CPU on (16, 100, 100), the two-pass mean and centred square 0.05 ms; and slicing
    plus cat cost a zero-filled full-size gradient per slice in the backward pass.
    """

    @staticmethod
    def forward(ctx, h, gamma, beta, eps, overwrite, relu):
        n, k = gamma.shape[0], h.shape[0]
        h_bn, h_plain = h.split([n, k - n])
        mean = h_bn.mean(1, keepdim=True)  # (n, 1, C)
        centered = h_bn - mean  # (n, B, C)
        var = centered.square().mean(1, keepdim=True)
        rstd = torch.rsqrt(var + eps)
        out = h if overwrite else torch.empty_like(h)  # (K, B, C)
        out_bn, out_plain = out.split([n, k - n])
        torch.addcmul(beta, centered, gamma * rstd, out=out_bn)  # gamma * x_hat + beta in one pass
        if overwrite:
            ctx.mark_dirty(h)
        else:
            out_plain.copy_(h_plain)
        if relu:
            out.clamp_min_(0)
        ctx.relu = relu
        ctx.save_for_backward(centered, rstd, gamma, out if relu else None)
        ctx.mark_non_differentiable(mean, var)
        ctx.set_materialize_grads(False)  # no zero-filled gradients for the statistics
        return out, mean, var

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var):
        if grad_out is None:  # the output did not reach the loss
            return None, None, None, None, None, None
        centered, rstd, gamma, out = ctx.saved_tensors
        n, b = centered.shape[:2]
        if ctx.relu:  # the masked gradient is a new buffer: the plain models' rows are final in it
            grad_h = torch.ops.aten.threshold_backward(grad_out, out, 0)
            g = grad_h[:n]
        else:
            grad_h = torch.empty_like(grad_out)
            grad_h[n:] = grad_out[n:]
            g = grad_out[:n]
        grad_beta = g.sum(1, keepdim=True)  # (n, 1, C)
        grad_gamma = (g * centered).sum(1, keepdim=True).mul_(rstd)  # sum(g * x_hat)
        # dL/dh = s * (g - mean(g) - x_hat * mean(g * x_hat)) with s = gamma * rstd, g = dL/dy
        s = gamma * rstd
        grad_bn = grad_h[:n]
        torch.addcmul((s * grad_beta).mul_(-1 / b), g, s, out=grad_bn)  # may overwrite g: its sums are taken
        grad_bn.addcmul_(centered, (s * rstd * grad_gamma).mul_(-1 / b))
        return grad_h, grad_gamma, grad_beta, None, None, None


def stacked_linears(
    sizes: list[int], stds: Callable[[int], list[float]], generator: torch.Generator | None
) -> tuple[nn.ParameterList, nn.ParameterList]:
    """The linear layers of K models side by side: weights (K, fan_in, fan_out) from one draw per layer, scaled
    by each model's std (`stds(fan_in)`, one per model), and zero biases (K, 1, fan_out)."""
    weights, biases = nn.ParameterList(), nn.ParameterList()
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        std = torch.tensor(stds(fan_in)).reshape(-1, 1, 1)
        weights.append(nn.Parameter(torch.randn(1, fan_in, fan_out, generator=generator) * std))
        biases.append(nn.Parameter(torch.zeros(len(std), 1, fan_out)))
    return weights, biases


@dataclass(frozen=True)
class StackShape:
    n_in: int
    n_out: int
    depth: int
    width: int
    activation: str = "relu"
    norm_place: str = "before"  # BN before or after the activation


class StackedMLP(nn.Module):
    def __init__(
        self,
        shape: StackShape,
        init_stds: list[float] | None = None,
        n_bn: int = 0,
        *,
        weight_init: str = "std",
        generator: torch.Generator | None = None,
        eps: float = 1e-5,
        **running_kwargs,
    ):
        """`init_stds` has one entry per model (used when weight_init == 'std'); its length is K.
        `running_kwargs` go to each layer's RunningStats (momenta, init, var_estimator, ...)."""
        super().__init__()
        init_stds = init_stds or [0.01]
        self.shape, self.k, self.n_bn, self.eps = shape, len(init_stds), n_bn, eps
        self.act = ACTIVATION_FORMS[shape.activation].fn
        sizes = [shape.n_in] + [shape.width] * shape.depth + [shape.n_out]
        self.weights, self.biases = stacked_linears(
            sizes, lambda fan_in: [init_std(weight_init, fan_in, s) for s in init_stds], generator
        )
        self.gammas = nn.ParameterList(nn.Parameter(torch.ones(n_bn, 1, shape.width)) for _ in range(shape.depth))
        self.betas = nn.ParameterList(nn.Parameter(torch.zeros(n_bn, 1, shape.width)) for _ in range(shape.depth))
        self.stats = nn.ModuleList(RunningStats((n_bn, shape.width), **running_kwargs) for _ in range(shape.depth))

    def _norm(
        self, layer: int, h: torch.Tensor, mode: str, eval_row: int, overwrite: bool, relu: bool = False
    ) -> torch.Tensor:
        """BatchNorm on the first n_bn models of (K, B, C); 'train' updates the running stats, 'probe' does not.
        `relu`: ReLU on all K models follows in the same step (only in 'train' and 'probe' mode, with BN)."""
        if self.n_bn == 0:
            return h
        gamma, beta = self.gammas[layer], self.betas[layer]
        if mode == "eval":
            mean, var = self.stats[layer].estimate(eval_row)
            if torch.is_grad_enabled() or not overwrite:  # the plain formula, differentiable
                normed = normalize(h[: self.n_bn], mean.unsqueeze(1), var.unsqueeze(1), self.eps) * gamma + beta
                return torch.cat([normed, h[self.n_bn :]]) if self.n_bn < self.k else normed
            # one pass, as torch's own CPU kernel: h * (gamma / sigma) + (beta - mean * gamma / sigma)
            scale = gamma * torch.rsqrt(var + self.eps).unsqueeze(1)  # (n_bn, 1, C)
            torch.addcmul(beta - mean.unsqueeze(1) * scale, h[: self.n_bn], scale, out=h[: self.n_bn])
            return h
        check_batch(h, (1,))
        out, mean, var = _StackedBatchNorm.apply(h, gamma, beta, self.eps, overwrite, relu)
        if mode == "train":
            self.stats[layer].update(mean.squeeze(1), var.squeeze(1), h.shape[1])
        return out

    def forward(
        self, x: torch.Tensor, mode: str = "train", record: BlockRecorder | None = None, eval_row: int = 0
    ) -> torch.Tensor:
        """x (B, n_in) -> logits (K, B, n_out). mode: 'train', 'eval' (running stats) or 'probe'
        (batch statistics without touching the running stats)."""
        # Without a recorder, BN and the activation overwrite their input when nothing needs it: with no
        # autograd always, and in training when BN comes first (it normalizes the Linear output, which the
        # Linear's backward does not use). The init sweep's accuracy took 0.6x the time, a step 0.93x.
        overwrite = record is None and (not torch.is_grad_enabled() or self.shape.norm_place == "before")
        act = ACTIVATION_FORMS[self.shape.activation].in_place if overwrite else self.act
        # BN then ReLU as one autograd node: one gradient buffer per layer instead of two (a step ~5% faster)
        fuse_relu = overwrite and self.shape.activation == "relu" and self.n_bn > 0 and mode != "eval"
        # bias added in place after the matmul: 5% faster over the init sweep than baddbmm
        h = torch.matmul(x, self.weights[0]).add_(self.biases[0])  # (K, B, width)
        for layer in range(self.shape.depth):
            if layer:
                h = torch.bmm(h, self.weights[layer]).add_(self.biases[layer])
            if self.shape.norm_place == "before":
                normed = self._norm(layer, h, mode, eval_row, overwrite, fuse_relu)
                out = activated = normed if fuse_relu else act(normed)
            else:
                activated = act(h)
                out = normed = self._norm(layer, activated, mode, eval_row, overwrite)
            if record is not None:
                record(layer, {"linear": h, "norm": normed, "act": activated})
            h = out
        return torch.bmm(h, self.weights[-1]).add_(self.biases[-1])

    def extra_repr(self):
        s = self.shape
        return f"K={self.k} (BN on the first {self.n_bn}), {s.n_in}-{s.width}x{s.depth}-{s.n_out}, {s.activation}"


def stacked_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-model mean cross-entropy: logits (K, B, C), y (B,) -> (K,).

    Classes on dim 1 of (K, C, B): torch's log_softmax over a last dim of 10 classes took 3.5x longer.
    """
    k, b, _ = logits.shape
    return nn.functional.cross_entropy(logits.transpose(1, 2), y.expand(k, b), reduction="none").mean(1)


def make_optimizer(params, name: str, lr: float, sgd_momentum: float = 0.0) -> torch.optim.Optimizer:
    """SGD and Adam are elementwise, so one optimizer over stacked weights equals K separate ones.
    foreach: one multi-tensor kernel per update instead of one per parameter (CPU default is off)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, foreach=True)
    return torch.optim.SGD(params, lr=lr, momentum=sgd_momentum, foreach=True)
