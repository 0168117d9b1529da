"""Per-layer telemetry on a fixed probe batch, kept apart from the training loop.

Histograms use bin edges fixed at the first probe (shared by all models of a stack), so frames
over training and the BN / no-BN networks are comparable.
"""

from __future__ import annotations

import torch

from normviz.stacked import StackedMLP

QUANTITIES = ("linear", "norm", "act")  # Linear output (BN's input), after BN, after the activation
N_BINS = 40
GRAD_EDGES = torch.linspace(-10.0, 1.0, N_BINS + 1)  # log10 |dL/dW|
SATURATION = {"tanh": lambda a: a.abs() > 0.97, "sigmoid": lambda a: (a < 0.03) | (a > 0.97)}
BOUNDED_ACT_RANGE = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def histogram(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Share of values per bin for each row: values (K, N), edges (nb+1,) -> (K, nb).

    Values outside the edges count in the end bins, so nothing disappears from the picture.
    """
    nb = len(edges) - 1
    idx = torch.bucketize(values.contiguous(), edges[1:-1])  # (K, N) in [0, nb)
    counts = torch.zeros(values.shape[0], nb).scatter_add_(1, idx, torch.ones_like(values))
    return counts / values.shape[1]


def fixed_edges(values: torch.Tensor, activation: str | None = None) -> torch.Tensor:
    """Edges covering the central 99.6% of values with a margin; bounded activations use their range."""
    if activation in BOUNDED_ACT_RANGE:
        lo, hi = BOUNDED_ACT_RANGE[activation]
    else:
        flat = values.flatten()
        flat = flat[torch.isfinite(flat)]
        sample = flat[torch.linspace(0, len(flat) - 1, min(len(flat), 20_000)).long()] if len(flat) else flat
        lo, hi = (torch.quantile(sample, torch.tensor([0.002, 0.998])).tolist() if len(sample) else (-1.0, 1.0))
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
        captured: list[dict[str, torch.Tensor]] = []
        self.model(self.probe_x, "probe", record=lambda layer, acts: captured.append(acts))
        k = self.model.k
        if self.edges is None:
            self.edges = {q: [fixed_edges(c[q], self.activation if q == "act" else None) for c in captured]
                          for q in QUANTITIES}
        out = {}
        for q in QUANTITIES:
            out[f"hist_{q}"] = torch.stack(
                [histogram(c[q].reshape(k, -1), e) for c, e in zip(captured, self.edges[q])], 1)
        acts = torch.stack([c["act"] for c in captured], 1)  # (K, L, B, C)
        out["mean"] = acts.mean((2, 3))
        out["std"] = acts.std((2, 3))
        saturated = SATURATION.get(self.activation)
        out["saturated"] = saturated(acts).float().mean((2, 3)) if saturated else torch.zeros(k, len(captured))
        # a dead ReLU unit outputs 0 for every sample of the probe batch
        out["dead"] = ((acts <= 0).all(2).float().mean(2) if self.activation == "relu"
                       else torch.zeros(k, len(captured)))
        out["grad_hist"] = self._grad_hist()
        return out

    def _grad_hist(self) -> torch.Tensor:
        """log10 |dL/dW| of each hidden layer's weights at the latest step: (K, L, nb)."""
        rows = []
        for w in list(self.model.weights)[: self.model.shape.depth]:
            if w.grad is None:  # before the first step there is no gradient to show
                rows.append(torch.full((self.model.k, N_BINS), float("nan")))
            else:
                rows.append(histogram(torch.log10(w.grad.abs().reshape(self.model.k, -1) + 1e-30), GRAD_EDGES))
        return torch.stack(rows, 1)
