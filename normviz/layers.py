"""Normalization layers written out for teaching, each tested against the torch module it mirrors.

Internally one momentum convention: PyTorch's (`m` = weight of the new batch statistic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Activation:
    """One activation in the forms the code needs: a layer, a function, and a function that overwrites its input
    (for forward passes that keep no intermediate tensors)."""

    module: type[nn.Module]
    fn: Callable[[torch.Tensor], torch.Tensor]
    in_place: Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


# by the names config.ACTIVATIONS lets a Spec choose
ACTIVATION_FORMS = {
    "relu": Activation(nn.ReLU, torch.relu, torch.relu_),
    "tanh": Activation(nn.Tanh, torch.tanh, torch.tanh_),
    "sigmoid": Activation(nn.Sigmoid, torch.sigmoid, torch.sigmoid_),
    "gelu": Activation(nn.GELU, nn.functional.gelu, nn.functional.gelu),
    "linear": Activation(nn.Identity, _identity, _identity),
}

RUNNING_INITS = ("pytorch", "zeros")
VAR_ESTIMATORS = ("unbiased", "biased")


def keras_to_pytorch(momentum: float) -> float:
    """Keras/TF/Flax `momentum` is the weight of the old value; PyTorch's is the weight of the new batch."""
    return 1.0 - momentum


def normalize(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float) -> torch.Tensor:
    return (x - mean) * torch.rsqrt(var + eps)


def check_batch(x: torch.Tensor, reduce_dims: tuple[int, ...]):
    """torch refuses train-mode BN with one value per channel; so do we, with torch's words."""
    n = 1
    for d in reduce_dims:
        n *= x.shape[d]
    if n <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")


class RunningStats(nn.Module):
    """Running mean/var for several momenta at once, plus the cumulative average (`momentum=None`).

    Training in train mode uses batch statistics, so these buffers never change the training path;
    one set per momentum therefore costs one small update per step instead of one training run each.
    Row i of `mean`/`var` belongs to `momenta[i]`; with `cma`, the last row is the cumulative average.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        momenta: tuple[float, ...] = (0.1,),
        cma: bool = False,
        init: str = "pytorch",
        var_estimator: str = "unbiased",
        bias_correction: bool = False,
    ):
        super().__init__()
        if init not in RUNNING_INITS or var_estimator not in VAR_ESTIMATORS:
            raise ValueError(f"init must be one of {RUNNING_INITS}, var_estimator one of {VAR_ESTIMATORS}")
        if not all(0.0 < m <= 1.0 for m in momenta):
            raise ValueError(f"PyTorch-convention momenta must lie in (0, 1], got {momenta}")
        self.momenta, self.cma, self.init = tuple(momenta), cma, init
        self.var_estimator, self.bias_correction = var_estimator, bias_correction
        rows = len(momenta) + int(cma)
        start_var = 1.0 if init == "pytorch" and not bias_correction else 0.0
        self.register_buffer("mean", torch.zeros(rows, *shape))  # (M, *shape)
        self.register_buffer("var", torch.full((rows, *shape), start_var))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        # sum of the weights the EMA has given real batches: 1 - prod(1 - m_t), Adam's bias correction
        self.register_buffer("weight_seen", torch.zeros(rows))

    @torch.no_grad()
    def update(self, batch_mean: torch.Tensor, batch_var: torch.Tensor, n: int, momenta: torch.Tensor | None = None):
        """Fold one batch in. `batch_var` is the biased batch variance over `n` values per channel.

        `momenta` overrides this step's momenta (a schedule); shape (len(self.momenta),).
        """
        self.num_batches_tracked += 1
        if self.var_estimator == "unbiased":
            batch_var = batch_var * (n / max(n - 1, 1))
        m = torch.as_tensor(self.momenta if momenta is None else momenta, dtype=self.mean.dtype)
        if self.cma:
            m = torch.cat([m, self.num_batches_tracked.to(m.dtype).reciprocal().reshape(1)])  # in the buffers' dtype
        self.weight_seen.mul_(1 - m).add_(m)
        w = m.reshape(-1, *([1] * (self.mean.dim() - 1)))  # (M, 1, ...)
        # (1 - m) * running + m * batch, written with mul_/add_ because vmap has no batching rule for lerp_
        self.mean.mul_(1 - w).add_(w * batch_mean.unsqueeze(0))
        self.var.mul_(1 - w).add_(w * batch_var.unsqueeze(0))

    def estimate(self, row: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, var) of one row, bias-corrected when asked (a no-op for the cumulative average)."""
        mean, var = self.mean[row], self.var[row]
        if self.bias_correction:
            seen = self.weight_seen[row].clamp_min(1e-12)
            return mean / seen, var / seen
        return mean, var

    def estimates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, var) of every row at once: (M, *shape) each."""
        if self.bias_correction:
            seen = self.weight_seen.clamp_min(1e-12).reshape(-1, *([1] * (self.mean.dim() - 1)))
            return self.mean / seen, self.var / seen
        return self.mean, self.var

    def extra_repr(self):
        return (
            f"momenta={self.momenta}, cma={self.cma}, init={self.init}, "
            f"var_estimator={self.var_estimator}, bias_correction={self.bias_correction}"
        )


class BatchNorm(nn.Module):
    """BatchNorm over dim 1 of (B, C) or (B, C, *spatial), tracking several momenta at once.

    With `momenta=(m,)` it computes exactly what `nn.BatchNorm1d/2d(momentum=m)` does;
    `momenta=()` with `cma=True` is `momentum=None`. Eval mode uses row `eval_row` of the stats.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momenta: tuple[float, ...] = (0.1,),
        cma: bool = False,
        init: str = "pytorch",
        var_estimator: str = "unbiased",
        bias_correction: bool = False,
        affine: bool = True,
        eval_row: int = 0,
    ):
        super().__init__()
        self.num_features, self.eps, self.eval_row = num_features, eps, eval_row
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.stats = RunningStats((num_features,), momenta, cma, init, var_estimator, bias_correction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = (0,) + tuple(range(2, x.dim()))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            check_batch(x, dims)
            var, mean = torch.var_mean(x, dim=dims, unbiased=False)
            self.stats.update(mean.detach(), var.detach(), x.numel() // x.shape[1])
        else:
            mean, var = self.stats.estimate(self.eval_row)
        y = normalize(x, mean.reshape(shape), var.reshape(shape), self.eps)
        if self.weight is not None:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, eval_row={self.eval_row}"


def affine(y: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    """gamma * y + beta with per-channel (C,) parameters broadcast over dim 1."""
    if weight is None:
        return y
    shape = (1, -1) + (1,) * (y.dim() - 2)
    return y * weight.reshape(shape) + bias.reshape(shape)


class GroupNorm(nn.Module):
    """Normalises each sample over groups of consecutive channels (and all spatial positions)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = nn.Parameter(torch.ones(num_channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.reshape(x.shape[0], self.num_groups, -1)  # (B, G, C/G * spatial)
        var, mean = torch.var_mean(g, dim=-1, unbiased=False, keepdim=True)
        return affine(normalize(g, mean, var, self.eps).reshape(x.shape), self.weight, self.bias)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}"


class LayerNorm(GroupNorm):
    """Normalises each sample over all its channels and positions; gamma/beta are per channel (C,)."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True):
        super().__init__(1, num_features, eps, affine)

    def extra_repr(self):
        return f"{self.num_channels}, eps={self.eps}"


class InstanceNorm(GroupNorm):
    """Normalises each channel of each sample over its spatial positions; no running statistics."""

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__(num_channels, num_channels, eps, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one value per (sample, channel) would normalise to exactly 0: nothing left to learn from
        if x[0, 0].numel() <= 1:
            raise ValueError(
                "InstanceNorm needs spatial dimensions with more than one position per channel, "
                f"got input size {tuple(x.shape)}; for (B, C) features use LayerNorm or BatchNorm"
            )
        return super().forward(x)

    def extra_repr(self):
        return f"{self.num_channels}, eps={self.eps}"


def renorm_correction(
    batch_mean: torch.Tensor,
    batch_std: torch.Tensor,
    running_mean: torch.Tensor,
    running_std: torch.Tensor,
    rmax: float,
    dmax: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch Renorm's (r, d): x_hat_batch * r + d = x_hat_running, clipped, and constants for backprop."""
    r = (batch_std / running_std).clamp(1.0 / rmax, rmax)
    d = ((batch_mean - running_mean) / running_std).clamp(-dmax, dmax)
    return r.detach(), d.detach()


class BatchRenorm(nn.Module):
    """Batch Renormalization (Ioffe 2017): BN whose training output is pulled towards the running statistics.

    With rmax=1 and dmax=0 it is plain BatchNorm. `last_r`, `last_d` hold the corrections of the last batch.
    Unlike the paper's Algorithm 1, the running sigma is sqrt(running var + eps) (PyTorch's unbiased running
    var, so that it matches nn.BatchNorm's buffers), and rmax, dmax are fixed rather than relaxed from 1 and 0.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.01,
        rmax: float = 3.0,
        dmax: float = 5.0,
        affine: bool = True,
    ):
        super().__init__()
        if rmax < 1 or dmax < 0:
            raise ValueError(f"Batch Renorm needs rmax >= 1 and dmax >= 0, got rmax={rmax}, dmax={dmax}")
        self.num_features, self.eps, self.rmax, self.dmax = num_features, eps, rmax, dmax
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.stats = RunningStats((num_features,), (momentum,))
        self.last_r = self.last_d = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = (0,) + tuple(range(2, x.dim()))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        running_mean, running_var = self.stats.estimate()
        if not self.training:
            return affine(
                normalize(x, running_mean.reshape(shape), running_var.reshape(shape), self.eps), self.weight, self.bias
            )
        check_batch(x, dims)
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)  # (C,)
        r, d = renorm_correction(
            mean, torch.sqrt(var + self.eps), running_mean, torch.sqrt(running_var + self.eps), self.rmax, self.dmax
        )
        self.last_r, self.last_d = r, d
        self.stats.update(mean.detach(), var.detach(), x.numel() // x.shape[1])
        y = normalize(x, mean.reshape(shape), var.reshape(shape), self.eps) * r.reshape(shape) + d.reshape(shape)
        return affine(y, self.weight, self.bias)

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.stats.momenta[0]}, rmax={self.rmax}, dmax={self.dmax}"
        )


class WSConv2d(nn.Conv2d):
    """Conv2d whose filters are standardised (zero mean, unit variance over in_ch*kh*kw) before each use."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(self.weight, dim=(1, 2, 3), unbiased=False, keepdim=True)  # (out_ch, 1, 1, 1)
        return self._conv_forward(x, normalize(self.weight, mean, var, 1e-5), self.bias)


NORM_KINDS = ("none", "batch", "layer", "instance", "group", "renorm")


# how the app names each norm kind of make_norm
NORM_LABELS = {
    "none": "no norm",
    "batch": "BatchNorm",
    "layer": "LayerNorm",
    "group": "GroupNorm",
    "group+ws": "GroupNorm + WS",
    "instance": "InstanceNorm",
    "renorm": "Batch Renorm",
    "sync": "SyncBN",
    "rms": "RMSNorm",
}


def group_count(channels: int, groups: int) -> int:
    """The group count GroupNorm really gets: the largest divisor of `channels` not above `groups`."""
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return g


def make_norm(kind: str, num_channels: int, *, groups: int = 4, **kwargs) -> nn.Module:
    """The norm layer called `kind`; `kwargs` go to its constructor (e.g. momenta= for batch, rmax= for renorm)."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return BatchNorm(num_channels, **kwargs)
    if kind == "layer":
        return LayerNorm(num_channels, **kwargs)
    if kind == "instance":
        return InstanceNorm(num_channels, **kwargs)
    if kind == "group":
        return GroupNorm(group_count(num_channels, groups), num_channels, **kwargs)
    if kind == "renorm":
        return BatchRenorm(num_channels, **kwargs)
    raise ValueError(f"unknown norm kind {kind!r}; valid kinds: {NORM_KINDS}")


class RMSNorm(nn.Module):
    """Divides each sample by the root mean square of all its channels and positions: LayerNorm without
    subtracting the mean, and with a gain but no bias; gamma is per channel (C,). On (B, C) it is
    torch.nn.RMSNorm(C); on (B, C, *spatial), torch.nn.RMSNorm((C, *spatial)) with gamma repeated over positions.
    `eps=None` is torch's default: the machine epsilon of the input's dtype."""

    def __init__(self, num_features: int, eps: float | None = None, affine: bool = True):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        y = x * torch.rsqrt(x.square().mean(tuple(range(1, x.dim())), keepdim=True) + eps)
        return y if self.weight is None else y * self.weight.reshape((1, -1) + (1,) * (x.dim() - 2))

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}"
