"""One look for every chart: colours per norm and per momentum, and projector-sized fonts."""

from __future__ import annotations

import textwrap

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
TOOLBAR_PX = 34  # Plotly's toolbar (top right) stays clear of the title
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


def _title_chars(font_size: int) -> int:
    """A title line's length: a 390 px phone's at the normal size; presenter mode's is a wide projector."""
    return 60 if font_size >= FONT_SIZES["large"] else round(36 * FONT_SIZES["normal"] / font_size)


def wrap(text: str, width: int) -> str:
    """Break each line of a Plotly title (lines end at <br>) between words, at most `width` characters a line;
    a line with markup (<b>…</b>) stays whole."""
    fill = textwrap.TextWrapper(width, break_long_words=False, break_on_hyphens=False).fill
    return "<br>".join(line if "<" in line else fill(line).replace("\n", "<br>") for line in text.split("<br>"))


def _wrap_subplot_titles(fig: go.Figure, font_size: int) -> int:
    """Wrap the subplot titles to their column's share of a phone's width; the pixels the top row's take."""
    titles = [
        a
        for a in fig.layout.annotations
        if a.yref == "paper" and a.yanchor == "bottom" and a.showarrow is False and a.textangle is None and a.text
    ]
    if not titles:
        return 0
    top = max(a.y for a in titles)
    columns = sum(a.y == top for a in titles)
    # centred over their plot, which a phone's tick labels and margins leave narrower than the figure
    width = max(12, round(_title_chars(font_size) * 0.8 / columns**0.6))
    for a in titles:
        a.text = wrap(a.text, width)
    lines = max(a.text.count("<br>") + 1 for a in titles if a.y == top)
    return round(1.3 * font_size * lines)


def _right_of_plot(fig: go.Figure, font_size: int) -> int:
    """Room for row titles (make_subplots writes them turned, right of the plot); Plotly leaves them cut."""
    return round(1.5 * font_size) if any(a.textangle == 90 for a in fig.layout.annotations) else 0


def style(
    fig: go.Figure, title: str | None = None, font_size: int = FONT_SIZES["normal"], height: int | None = None
) -> go.Figure:
    """Apply the shared layout: readable fonts, a title that fits a phone, compact margins, legend below."""
    title = wrap(title, _title_chars(font_size)) if title else None
    subplot_titles = _wrap_subplot_titles(fig, font_size)
    title_px = round(1.3 * (font_size + 4) * (title.count("<br>") + 1)) + 12 if title else 0
    fig.update_layout(
        # wrapped to fit a phone (Plotly does not wrap), under Plotly's toolbar, in a top margin that fits its
        # lines and the subplot titles under it (Plotly's automargin cut multi-line titles at some widths, and
        # it lifts a multi-line title by about 3/4 of a line: measured in Chromium, hence the extra pad)
        title=dict(
            text=title,
            font=dict(size=font_size + 4),
            yref="container",
            y=1,
            yanchor="top",
            pad=dict(t=TOOLBAR_PX + (round(0.75 * (font_size + 4)) if "<br>" in title else 0)),
        )
        if title
        else None,
        font=dict(size=font_size),
        margin=dict(l=10, r=10 + _right_of_plot(fig, font_size), t=TOOLBAR_PX + title_px + subplot_titles, b=10),
        # below the plot, under the axis titles: the chart's title stays free
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, xanchor="left", x=0),
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
