"""Chart exports: standalone HTML and PNG, made only when asked for, never during live redraws."""

import re
import struct

import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from normviz.figures import export


def _figure():
    return go.Figure(go.Bar(x=[1, 2, 3], y=[3, 1, 2])).update_layout(height=300, title="three bars")


def test_html_is_standalone_and_interactive():
    page = export.figure_html(_figure(), "bars")
    assert page.lower().startswith("<!doctype html>") and "<title>bars</title>" in page
    assert "plotly.js v" in page and "Plotly.newPlot(" in page  # the library itself is inside
    assert not re.search(r"<script[^>]+src=", page)
    layout = page[page.index("Plotly.newPlot(") :]
    assert '"plot_bgcolor":"white"' in layout and "#E5ECF6" not in layout  # plotly_white, not plotly's grey


@pytest.mark.skipif(export.chromium_path() is None, reason="PNG export needs Chromium")
def test_png_is_drawn_by_chromium_at_double_resolution():
    png = export.figure_png(_figure())
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (2 * export.PNG_WIDTH, 2 * 300)


@pytest.mark.skipif(export.chromium_path() is None, reason="PNG export needs Chromium")
def test_png_of_an_animated_chart_is_a_still_without_play_button_or_slider():
    import plotly.graph_objects as go

    still = go.Figure(go.Bar(y=[3, 1, 2])).update_layout(height=300)
    animated = go.Figure(still)
    animated.frames = [go.Frame(data=[go.Bar(y=[1, 1, 1])], name="0")]
    animated.update_layout(
        updatemenus=[dict(type="buttons", buttons=[dict(label="Play", method="animate", args=[None])])],
        sliders=[dict(steps=[dict(label="step 0", method="animate", args=[["0"]])], active=0)],
    )
    assert export.figure_png(animated) == export.figure_png(still)


def _page():
    import plotly.graph_objects as go

    from normviz import ui

    fig = go.Figure(go.Scatter(y=[1, 2]))

    def render(result, final: bool):
        ui.chart(fig, "final" if final else "live")
        ui.table_download([{"a": 1}], "table" if final else "live-table")

    ui._frame(render, None, True)  # how show_run draws a finished run
    ui._frame(render, None, False, "Training… 50%", 0.5)  # and a live frame of one still training


def test_downloads_only_on_the_final_draw():
    at = AppTest.from_function(_page, default_timeout=60).run()
    assert not at.exception
    keys = sorted(b.key for b in at.get("download_button"))
    assert keys == ["final.html", "final.png", "table.csv"]
    assert [c.key for c in at.get("plotly_chart")] == ["final"]  # a live frame's chart is updated in place
    assert [c.key for c in at.get("bidi_component")] == ["live.live"]


def test_a_table_downloads_as_csv_with_six_significant_digits():
    import numpy as np

    from normviz.ui import table_csv

    rows = [{"norm": "BN", "accuracy": float(np.float32(0.1)), "loss": 2 / 3, "step": 150}]  # as .tolist() gives it
    assert table_csv(rows).splitlines() == ["norm,accuracy,loss,step", "BN,0.1,0.666667,150"]
