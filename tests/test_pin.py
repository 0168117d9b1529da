"""Pin and compare: a pinned run's charts are drawn faded over a later run's (lines) or beside them (bars and
heatmaps), labelled with the settings that differ; unpinning removes them."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
from live_pages import run_to_final
from streamlit.testing.v1 import AppTest

from normviz.figures import compare

ROOT = Path(__file__).resolve().parents[1]


def test_overlay_adds_the_pinned_traces_faded_on_their_axes_and_names_the_difference():
    current = go.Figure(go.Scatter(x=[0, 1], y=[1, 2], name="BN", xaxis="x2", yaxis="y2"))
    current.update_layout(title_text="Loss")
    pinned = go.Figure(go.Scatter(x=[0, 1], y=[3, 4], name="BN", xaxis="x2", yaxis="y2"))
    fig = compare.overlay(current, pinned, compare.differences({"batch_size": "32"}, {"batch_size": "2"}))
    faded = fig.data[1]
    assert len(current.data) == 1 and len(fig.data) == 2  # the current figure (maybe memoized) is not changed
    assert faded.name == "BN · pinned" and faded.opacity == compare.PINNED_OPACITY and faded.yaxis == "y2"
    assert list(faded.y) == [3, 4] and "pinned run (batch_size=32)" in fig.layout.title.text


def test_bars_and_heatmaps_are_not_overlaid():
    assert compare.can_overlay(go.Figure(go.Scatter(y=[1])))
    assert not compare.can_overlay(go.Figure([go.Scatter(y=[1]), go.Bar(y=[1])]))
    assert not compare.can_overlay(go.Figure(go.Heatmap(z=[[1]])))


def _figures(at) -> dict[str, dict]:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_a_pinned_run_is_drawn_faded_over_the_next_one_until_unpinned():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240).run()
    at.switch_page("pages/running_stats.py")
    at.query_params.update({"steps": "120", "lr": "0.1"})
    run_to_final(at)
    before = _figures(at)["rs-c"]
    at.sidebar.button(key="running_stats.pin").click()
    at.run()
    assert not at.exception and not any(" · pinned" in (t.get("name") or "") for t in before["data"])
    at.sidebar.select_slider(key="running_stats.lr").set_value(0.01)
    run_to_final(at)
    after = _figures(at)["rs-c"]
    pinned = [t for t in after["data"] if t.get("legendgroup") == "pinned"]
    assert [t["y"] for t in pinned] == [t["y"] for t in before["data"]] and len(after["data"]) == 2 * len(pinned)
    assert "pinned run (lr=0.1)" in after["layout"]["title"]["text"]
    assert any(c.value.startswith("Pinned:") and "lr=0.1" in c.value for c in at.sidebar.caption)
    at.sidebar.button(key="running_stats.unpin").click()
    run_to_final(at)
    assert not any(t.get("legendgroup") == "pinned" for t in _figures(at)["rs-c"]["data"])
