"""One model at a time: an MLP, a small CNN and a row-by-row RNN for the 8x8 digits, each with a pluggable norm."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from normviz.layers import ACTIVATION_FORMS, BatchNorm, LayerNorm, WSConv2d, make_norm
from normviz.stacked import init_std as scheme_std  # the std each init scheme gives

RNN_NORMS = ("none", "batch", "layer")


@torch.no_grad()
def init_linear_(layer: nn.Linear | nn.Conv2d, init: str, std: float = 0.01, generator: torch.Generator | None = None):
    """Normal weights with the std of `init` (std, Xavier sqrt(1/fan_in), He sqrt(2/fan_in)); zero bias."""
    fan_in = layer.weight[0].numel()
    layer.weight.normal_(0.0, scheme_std(init, fan_in, std), generator=generator)
    if layer.bias is not None:
        layer.bias.zero_()


class Block(nn.Module):
    """Weight layer -> norm -> activation ("before") or weight layer -> activation -> norm ("after")."""

    def __init__(self, linear: nn.Module, norm: nn.Module, act: nn.Module, norm_place: str = "before"):
        super().__init__()
        if norm_place not in ("before", "after"):
            raise ValueError(f"norm_place must be 'before' or 'after', got {norm_place!r}")
        self.linear, self.norm, self.act, self.norm_place = linear, norm, act, norm_place

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return self.act(self.norm(x)) if self.norm_place == "before" else self.norm(self.act(x))

    def extra_repr(self):
        return f"norm_place={self.norm_place}"


class MLP(nn.Module):
    """`depth` hidden blocks of `width` units, then a plain Linear to `n_out`."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        depth: int,
        width: int,
        activation: str = "relu",
        norm: str = "none",
        norm_place: str = "before",
        init: str = "he",
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        **norm_kwargs,
    ):
        super().__init__()
        if norm == "instance":
            raise ValueError("InstanceNorm needs spatial dimensions; an MLP's (B, C) activations have none")
        sizes = [n_in] + [width] * depth
        self.blocks = nn.ModuleList(
            Block(nn.Linear(a, b), make_norm(norm, b, **norm_kwargs), ACTIVATION_FORMS[activation].module(), norm_place)
            for a, b in pairwise(sizes)
        )
        self.head = nn.Linear(sizes[-1], n_out)
        for layer in [b.linear for b in self.blocks] + [self.head]:
            init_linear_(layer, init, init_std, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)  # (B, width)
        return self.head(x)


class SmallCNN(nn.Module):
    """conv3x3 -> norm -> ReLU -> conv3x3/2 -> norm -> ReLU -> global average pool -> Linear, for flat images."""

    def __init__(
        self,
        n_classes: int = 10,
        channels: tuple[int, int] = (16, 32),
        norm: str = "batch",
        groups: int = 4,
        weight_standardization: bool = False,
        image_hw: tuple[int, int] = (8, 8),
        generator: torch.Generator | None = None,
        **norm_kwargs,
    ):
        super().__init__()
        conv = WSConv2d if weight_standardization else nn.Conv2d
        c1, c2 = channels
        self.image_hw = tuple(image_hw)
        self.blocks = nn.ModuleList(
            [
                Block(conv(1, c1, 3, padding=1), make_norm(norm, c1, groups=groups, **norm_kwargs), nn.ReLU()),
                Block(
                    conv(c1, c2, 3, stride=2, padding=1), make_norm(norm, c2, groups=groups, **norm_kwargs), nn.ReLU()
                ),
            ]
        )
        self.head = nn.Linear(c2, n_classes)
        for layer in [b.linear for b in self.blocks] + [self.head]:
            init_linear_(layer, "he", generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, *self.image_hw)  # (B, 1, H, W)
        for block in self.blocks:
            x = block(x)  # (B, C, H', W')
        return self.head(x.mean(dim=(2, 3)))  # (B, n_classes)


def rows_as_sequence(x_flat: torch.Tensor, repeat: int = 1) -> torch.Tensor:
    """(B, 64) digits -> (B, 8 * repeat, 8): one image row per time step, the image read `repeat` times."""
    return x_flat.reshape(x_flat.shape[0], 8, 8).repeat(1, repeat, 1)


class RowRNN(nn.Module):
    """Reads an image row by row: h_t = tanh(norm_t(W_x x_t + W_h h_{t-1})), then classifies h_T.

    norm="batch" keeps one BatchNorm per time step (per-step statistics, as Laurent et al. and Cooijmans et al.);
    norm="layer" shares one LayerNorm across all steps.
    """

    def __init__(
        self,
        n_classes: int = 10,
        hidden: int = 64,
        norm: str = "batch",
        max_steps: int = 8,
        n_in: int = 8,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if norm not in RNN_NORMS:
            raise ValueError(f"RowRNN norm must be one of {RNN_NORMS}, got {norm!r}")
        self.norm, self.max_steps = norm, max_steps
        self.w_x = nn.Linear(n_in, hidden)
        self.w_h = nn.Linear(hidden, hidden, bias=False)
        if norm == "batch":
            self.norms = nn.ModuleList(BatchNorm(hidden) for _ in range(max_steps))
        else:
            self.norms = nn.ModuleList([LayerNorm(hidden) if norm == "layer" else nn.Identity()])
        self.head = nn.Linear(hidden, n_classes)
        for layer in (self.w_x, self.w_h, self.head):
            init_linear_(layer, "xavier", generator=generator)

    def forward(self, x_seq: torch.Tensor, reuse_last_stats: bool = False) -> torch.Tensor:
        B, T, _ = x_seq.shape
        if self.norm == "batch" and T > self.max_steps and not reuse_last_stats:
            raise ValueError(
                f"BatchNorm has no statistics for time step t={self.max_steps} (counting from 0): "
                f"per-time-step BN was built for max_steps={self.max_steps} steps, this sequence has "
                f"{T}. Pass reuse_last_stats=True to reuse the last step's BN for the later steps."
            )
        h = x_seq.new_zeros(B, self.w_h.in_features)  # (B, hidden)
        for t in range(T):
            norm = self.norms[min(t, len(self.norms) - 1)]
            h = torch.tanh(norm(self.w_x(x_seq[:, t]) + self.w_h(h)))
        return self.head(h)

    def extra_repr(self):
        return f"norm={self.norm}, max_steps={self.max_steps}"
