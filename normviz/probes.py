"""Per-layer telemetry on a fixed probe batch, kept apart from the training loop.

Histograms use bin edges fixed at the first probe (shared by all models of a stack), so frames
over training and the BN / no-BN networks are comparable.
"""

from __future__ import annotations

import math

import torch

from normviz.stacked import StackedMLP

QUANTITIES = ("linear", "norm", "act")  # Linear output (BN's input), after BN, after the activation
N_BINS = 40
GRAD_EDGES = torch.linspace(-10.0, 1.0, N_BINS + 1)  # log10 |dL/dW|
SATURATION = {"tanh": lambda a: a.abs() > 0.97, "sigmoid": lambda a: (a < 0.03) | (a > 0.97)}
BOUNDED_ACT_RANGE = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}
MAX_RECORDS = 500  # telemetry records per run, however small the interval asked for (memory, figure size)
MAX_FRAMES = 200  # animation frames of one figure


def record_every(every: int, steps: int) -> int:
    """The recording interval used: `every`, or coarser so a run of `steps` records at most MAX_RECORDS times
    (plus its first and last step)."""
    return max(every, math.ceil(steps / MAX_RECORDS))


def frame_indices(n: int) -> list[int]:
    """At most MAX_FRAMES of n records, evenly spread, the first and the last included."""
    if n <= MAX_FRAMES:
        return list(range(n))
    return sorted({round(i * (n - 1) / (MAX_FRAMES - 1)) for i in range(MAX_FRAMES)})


def histograms(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Share of values per bin, each row with its own uniform edges: values (R, N), edges (R, nb+1) -> (R, nb).

    Bins are [e_i, e_i+1) as in numpy.histogram; values outside the edges (and +-inf) count in the end
    bins, so nothing disappears from the picture; NaN counts in the last bin. The bin comes from
    (v - lo) / width; the few values within rounding of an inner edge are then compared with the edge
    itself, so the counts equal numpy's. 5x less CPU than torch.bucketize on the probe (bench/).
    """
    r, nb = edges.shape[0], edges.shape[1] - 1
    lo, hi = edges[:, :1], edges[:, -1:]
    scale = nb / (hi - lo)  # (R, 1)
    pos = torch.addcmul(-lo * scale, values, scale)  # (R, N): bin k holds k <= pos < k + 1
    pos.nan_to_num_(nb - 0.5, nb - 0.5, 0.5).clamp_(0.5, nb - 0.5)  # out of range: the middle of an end bin
    # float32 arithmetic is a few ulps off, relative to the edges' magnitude: tol is about 8 ulps
    tol = 1e-6 * (torch.maximum(lo.abs(), hi.abs()) * scale + nb).max().item()
    near = pos.round().sub_(pos).abs_().lt_(tol)  # (R, N): 1.0 next to an inner edge
    idx = pos.int().add_(torch.arange(0, r * nb, nb, dtype=torch.int32).unsqueeze(1))  # bin numbers across rows
    rows, cols = near.nonzero(as_tuple=True)
    if len(rows):
        v, k = values[rows, cols], idx[rows, cols].long() - rows * nb
        k = (k + (v >= edges[rows, k + 1]).long() - (v < edges[rows, k]).long()).clamp_(0, nb - 1)
        idx[rows, cols] = (k + rows * nb).int()
    return torch.bincount(idx.flatten(), minlength=r * nb).reshape(r, nb).float().div_(values.shape[1])


def histogram(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """The same edges for every row: values (K, N), edges (nb+1,) -> (K, nb)."""
    return histograms(values, edges.expand(values.shape[0], -1))


def fixed_edges(values: torch.Tensor, activation: str | None = None) -> torch.Tensor:
    """Edges covering the central 99.6% of values with a margin; bounded activations use their range."""
    if activation in BOUNDED_ACT_RANGE:
        lo, hi = BOUNDED_ACT_RANGE[activation]
    else:
        flat = values.flatten()
        flat = flat[torch.isfinite(flat)]
        sample = flat[torch.linspace(0, len(flat) - 1, min(len(flat), 20_000)).long()] if len(flat) else flat
        lo, hi = torch.quantile(sample, torch.tensor([0.002, 0.998])).tolist() if len(sample) else (-1.0, 1.0)
        pad = 0.25 * (hi - lo)
        lo, hi = lo - pad, hi + pad
        if activation == "relu":
            lo = 0.0
        if hi - lo < 1e-12:
            lo, hi = lo - 1e-6, hi + 1e-6
    return torch.linspace(lo, hi, N_BINS + 1)


class LayerProbe:
    """Records histograms and summary statistics of every hidden block of a StackedMLP."""

    def __init__(self, model: StackedMLP, probe_x: torch.Tensor):
        self.model, self.probe_x = model, probe_x
        self.activation = model.shape.activation
        self.edges: dict[str, list[torch.Tensor]] | None = None

    @torch.no_grad()
    def record(self) -> dict[str, torch.Tensor]:
        """One snapshot: hist_<q> (K, L, nb), mean/std/saturated/dead (K, L), grad_hist (K, L, nb)."""
        rows: list[dict[str, torch.Tensor]] = []
        if self.edges is None:  # the first probe fixes the bin edges from all of its values
            captured: list[dict[str, torch.Tensor]] = []
            self.model(self.probe_x, "probe", record=lambda layer, acts: captured.append(acts))
            self.edges = {
                q: [fixed_edges(c[q], self.activation if q == "act" else None) for c in captured] for q in QUANTITIES
            }
            rows = [self._block(layer, acts) for layer, acts in enumerate(captured)]
        else:  # each block is summarised as soon as it is computed, while its tensors are in the cache
            self.model(self.probe_x, "probe", record=lambda layer, acts: rows.append(self._block(layer, acts)))
        out = {name: torch.stack([r[name] for r in rows], 1) for name in rows[0]}  # (K, L, ...)
        out["grad_hist"] = self._grad_hist()
        return out

    def _block(self, layer: int, acts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Histograms of one hidden block's three quantities and statistics of its activations, (K, ...) each."""
        k = self.model.k
        values = torch.stack([acts[q] for q in QUANTITIES]).reshape(len(QUANTITIES) * k, -1)  # (3K, B*C)
        edges = torch.stack([self.edges[q][layer] for q in QUANTITIES]).repeat_interleave(k, 0)  # (3K, nb+1)
        hists = histograms(values, edges).reshape(len(QUANTITIES), k, -1)
        out = {f"hist_{q}": h for q, h in zip(QUANTITIES, hists)}
        a = acts["act"]  # (K, B, C)
        out["mean"] = a.mean((1, 2))
        # two-pass std: Tensor.std over two dims took 10x longer
        out["std"] = (a - out["mean"][:, None, None]).square_().sum((1, 2)).div_(a[0].numel() - 1).sqrt_()
        saturated = SATURATION.get(self.activation)
        out["saturated"] = saturated(a).float().mean((1, 2)) if saturated else torch.zeros(k)
        # a dead ReLU unit outputs 0 for every sample of the probe batch
        out["dead"] = (a <= 0).all(1).float().mean(1) if self.activation == "relu" else torch.zeros(k)
        return out

    def _grad_hist(self) -> torch.Tensor:
        """log10 |dL/dW| of each hidden layer's weights at the latest step: (K, L, nb)."""
        k, hidden = self.model.k, list(self.model.weights)[: self.model.shape.depth]
        if hidden[0].grad is None:  # before the first step there is no gradient to show
            return torch.full((k, len(hidden), N_BINS), float("nan"))
        log_grads = [w.grad.abs().add_(1e-30).log10_().reshape(k, -1) for w in hidden]  # (K, fan_in * fan_out)
        rows = [histogram(log_grads[0], GRAD_EDGES)]  # the first layer's fan_in differs from the others'
        if len(hidden) > 1:  # layers 1.. have equal shapes: one call
            rest = torch.stack(log_grads[1:], 1)  # (K, L-1, N)
            rows.append(histogram(rest.flatten(0, 1), GRAD_EDGES).reshape(k, len(hidden) - 1, -1))
        return torch.cat([rows[0].unsqueeze(1)] + rows[1:], 1)
