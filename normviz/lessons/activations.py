"""What the Activations page says and draws: its introduction, the charts with their captions, what to notice
and the formulas."""

from __future__ import annotations

from normviz.experiments.activations import PROBE_BATCH, ActivationsResult
from normviz.figures import activations as figs
from normviz.panels import Chart, Panel, diverged
from normviz.views import Part

INTRO = "Two MLPs start from identical weights and train on the same batches; only one has BatchNorm."


def histogram_caption() -> str:
    return (
        f"Bars: share of a fixed probe batch (the first {PROBE_BATCH} training samples) per bin; bin edges are "
        "fixed at step 0 and values outside them count in the end bins. Drag the step slider or press play."
    )


WHAT_TO_NOTICE = (
    "- **No BN, tiny init** (std 0.01): each layer shrinks its input, so deep activations collapse "
    "to a spike at 0 and the gradients vanish; the network stays at chance.\n"
    "- **With BN** the same weights give every layer unit-scale inputs, whatever the init scale.\n"
    "- **Sigmoid/tanh with std 1** saturate without BN (mass at the ends of the range)."
)
FORMULAS = [
    r"\mu_B=\frac1m\sum_{i=1}^m x_i,\qquad \sigma_B^2=\frac1m\sum_{i=1}^m (x_i-\mu_B)^2",
    r"\hat x_i=\frac{x_i-\mu_B}{\sqrt{\sigma_B^2+\epsilon}},\qquad y_i=\gamma\hat x_i+\beta",
]


def panels(part: Part, r: ActivationsResult, final: bool, font: int, quantity: str = "act") -> list[Panel]:
    """quantity: what the histograms show (figs.QUANTITY_TITLES); they animate once the run is done."""
    out = [diverged(f"{model} network", step) for model, step in zip(r.models, r.diverged_at) if step is not None]
    return out + [
        Chart("act-hist", figs.layer_histograms(r, quantity, font, animate=final), histogram_caption()),
        Chart("act-curves", figs.training_curves(r, font)),
        Chart("act-stats", figs.layer_stats(r, font)),
    ]
