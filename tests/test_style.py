"""The shared chart look: momentum colours by rank, and fonts that really scale (ticks, axis titles, legends)."""

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normviz.figures.style import CMA_COLOR, FONT_SIZES, momentum_colors, style


def test_close_momenta_get_distinct_colours_and_equal_ones_share():
    colors = momentum_colors([0.5, 0.95, 0.996, None, 0.95])
    assert len(set(colors[:3])) == 3  # by value on a log scale these three were all yellow
    assert colors[1] == colors[4]
    assert colors[3] == CMA_COLOR


def test_colours_follow_the_order_of_the_values():
    assert momentum_colors([0.1, 0.001])[::-1] == momentum_colors([0.001, 0.1])
    assert momentum_colors([0.01, 0.9])[0] != momentum_colors([0.01, 0.9])[1]


def test_large_fonts_reach_ticks_axis_titles_and_legends():
    fig = make_subplots(1, 2)
    fig.add_scatter(x=[1, 2], y=[0.5, 5], row=1, col=1)
    fig.add_scatter(x=[1, 2], y=[1, 2], row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=1)
    size = FONT_SIZES["large"]
    style(fig, "t", size)
    for axis in (*fig.select_xaxes(), *fig.select_yaxes()):
        assert axis.tickfont.size == size and axis.title.font.size == size
    assert fig.layout.legend.font.size == size


def test_log_axes_are_labelled_by_decades_unless_ticks_are_given():
    fig = make_subplots(1, 2)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", tickvals=[2, 4], row=1, col=2)
    style(fig)
    assert fig.layout.yaxis.dtick == 1
    assert fig.layout.yaxis2.dtick is None
    assert go.Figure().layout.yaxis.dtick is None
