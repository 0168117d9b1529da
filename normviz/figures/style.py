"""One look for every chart: colours per norm and per momentum, and projector-sized fonts."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import sample_colorscale

# the same norm has the same colour on every page
NORM_COLORS = {
    "batch": "#1f77b4",
    "BN": "#1f77b4",
    "none": "#7f7f7f",
    "no BN": "#d62728",
    "layer": "#2ca02c",
    "group": "#ff7f0e",
    "group+ws": "#8c564b",
    "instance": "#9467bd",
    "renorm": "#17becf",
    "sync": "#e377c2",
    "rms": "#bcbd22",
}
REFERENCE_COLOR = "#8a8f98"  # reference lines: a mid grey that reads on light and dark themes
CMA_COLOR = "#6c7a89"  # slate grey: readable on the light and the dark theme
FONT_SIZES = {"normal": 14, "large": 20}
MENU_BG, MENU_TEXT = "#dfe5ec", "#1a1d23"


def norm_color(name: str) -> str:
    return NORM_COLORS.get(name, "#444444")


def momentum_colors(momenta) -> list[str]:
    """One colour per PyTorch-convention momentum, by rank on an ordered scale (smallest purple, largest yellow),
    so that close values such as 0.5, 0.95 and 0.996 still get distinct colours; equal values share one.
    None (the cumulative average) is slate grey."""
    ranked = sorted({m for m in momenta if m is not None})
    top = max(len(ranked) - 1, 1)
    scale = {m: sample_colorscale("Plasma", [0.05 + 0.8 * r / top])[0] for r, m in enumerate(ranked)}
    return [CMA_COLOR if m is None else scale[m] for m in momenta]


def style(
    fig: go.Figure, title: str | None = None, font_size: int = FONT_SIZES["normal"], height: int | None = None
) -> go.Figure:
    """Apply the shared layout: readable fonts, compact margins, legend on top."""
    fig.update_layout(
        title=dict(text=title, font=dict(size=font_size + 4)) if title else None,
        font=dict(size=font_size),
        margin=dict(l=10, r=10, t=60 if title else 30, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0),  # below: titles stay free
        hoverlabel=dict(font_size=font_size),
    )
    if height:
        fig.update_layout(height=height)
    for menu in fig.layout.updatemenus:  # play/pause buttons: readable on the light and the dark theme
        menu.update(bgcolor=MENU_BG, bordercolor=CMA_COLOR, font=dict(color=MENU_TEXT, size=font_size))
    fig.update_annotations(font_size=font_size)
    # explicit sizes: the Streamlit theme's template would otherwise keep ticks and legends at 12 px
    axis_fonts = dict(tickfont_size=font_size, title_font_size=font_size)
    fig.update_xaxes(**axis_fonts)
    fig.update_yaxes(**axis_fonts)
    fig.update_layout(legend_font_size=font_size)
    for axis in (*fig.select_xaxes(), *fig.select_yaxes()):
        if axis.type == "log" and axis.tickvals is None and axis.dtick is None:
            axis.dtick = 1  # 0.1 / 1 / 10 instead of bare mantissa digits
    return fig
