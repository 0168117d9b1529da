"""The shared chart look: momentum colours by rank, fonts that really scale (ticks, axis titles, legends), and
titles that fit a phone."""

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from normviz.figures.style import CMA_COLOR, FONT_SIZES, TOOLBAR_PX, momentum_colors, style, wrap


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


def test_wrap_breaks_between_words_and_keeps_given_breaks():
    text = "Training at batch size B (same samples seen; learning rate × B/32)"
    lines = wrap(text, 36).split("<br>")
    assert all(len(line) <= 36 for line in lines) and " ".join(lines) == text
    assert wrap("short<br>also short", 36) == "short<br>also short"


def test_a_long_title_wraps_below_the_toolbar_in_a_margin_that_grows_with_its_lines():
    short = style(go.Figure(), "Short title")
    long = style(go.Figure(), "A. Layer 2, channel 1: running estimates vs population, and more words")
    assert long.layout.title.text.count("<br>") == 2 and short.layout.title.text.count("<br>") == 0
    assert long.layout.margin.t > short.layout.margin.t > TOOLBAR_PX
    assert long.layout.title.pad.t > short.layout.title.pad.t == TOOLBAR_PX  # Plotly lifts multi-line titles
    presenter = style(go.Figure(), "A. Layer 2, channel 1: running estimates vs population", FONT_SIZES["large"])
    assert presenter.layout.title.text.count("<br>") == 0  # a projector is wide


def test_subplot_titles_wrap_to_their_column_and_row_titles_get_room():
    fig = make_subplots(1, 2, subplot_titles=("test accuracy (eval mode) after training at batch B", "short"))
    fig = style(fig, "Title")
    assert "<br>" in fig.layout.annotations[0].text and fig.layout.annotations[1].text == "short"
    assert fig.layout.margin.r == 10
    rows = style(make_subplots(2, 1, row_titles=("BN", "no BN")), "Title")
    assert rows.layout.margin.r > 10
