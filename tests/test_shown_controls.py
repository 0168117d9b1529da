"""Main-area controls (what the charts show, not what trains) are in the URL: a link reproduces them, a bad
value is named in a warning, and changing one updates the URL and the link to this view (ui.show_control)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from normviz import views

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _open(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    for name, value in params.items():
        at.query_params[name] = value
    return at.switch_page(f"pages/{page}.py").run()


def test_running_statistics_controls_come_from_a_link_and_stay_in_the_url():
    at = _open("running_stats", layer="2", channel="3", population="eval", momenta_shown="0,2")
    assert not at.exception and not at.warning
    state = at.session_state
    assert (state["running_stats.layer3"], state["running_stats.channel16"], state["running_stats.population"]) == (
        2,
        3,
        "eval",
    )
    assert at.multiselect[0].value == [0, 2]
    for name, value in (("layer", "2"), ("channel", "3"), ("population", "eval"), ("momenta_shown", "0,2")):
        assert at.query_params[name] == value, name
    assert "momenta" in at.query_params and "seed" in at.query_params  # the Spec's settings are there too


def test_changing_a_main_area_control_updates_the_url():  # and the link: tests/e2e/test_pages_browser.py
    at = _open("running_stats")
    at.selectbox(key="running_stats.layer3").set_value(1).run()
    assert not at.exception and at.query_params["layer"] == "1"
    assert at.selectbox(key="running_stats.layer3").value == 1  # counted from 1, as the menu says "layer 1"


def test_a_bad_value_in_a_link_is_named_and_the_default_shown():
    at = _open("activations", quantity="nope")
    assert not at.exception
    (warning,) = [w.value for w in at.warning]
    assert "`quantity`" in warning and "nope" in warning and "act" in warning
    assert at.session_state["activations.quantity"] == "act" and at.query_params["quantity"] == "act"


def test_every_shown_parameter_is_a_name_no_spec_of_its_view_uses():
    for view in views.VIEWS:
        assert not set(view.shown) & set(view.spec_cls.field_info()), view.name


def test_the_controls_drawn_with_a_runs_charts_come_from_a_link_too():
    """Alternatives' tensor norm, Why BN's noisy layer and BN by hand's feature (all counted from 1)."""
    cases = (
        ("alternatives", {"tensor_norm": "layer"}, "alternatives.tensor_norm", "layer"),
        ("why_bn", {"view": "noisy", "layer": "1"}, "why_bn.layer6", 1),
        ("by_hand", {"feature": "2"}, "by_hand.feature3.0", 2),  # 3 features, the first one in focus
    )
    for page, params, key, value in cases:
        at = _open(page, **params)
        assert not at.exception and not at.warning, (page, [w.value for w in at.warning])
        (name,) = set(params) - {"view"}
        assert at.query_params[name] == params[name], page
        assert at.session_state[key] == value, page


def test_a_chosen_segment_clicked_again_stays_chosen():
    at = _open("activations")
    at.segmented_control(key="activations.quantity").set_value(None).run()
    assert not at.exception and at.query_params["quantity"] == "act"


def test_a_control_the_settings_no_longer_draw_leaves_the_url_and_comes_back_with_them():
    at = _open("alternatives", tensor_norm="layer")
    assert at.query_params["tensor_norm"] == "layer"
    view = at.sidebar.selectbox(key="alternatives.view")
    view.set_value("cost").run()
    assert not at.exception and "tensor_norm" not in at.query_params  # a fresh session would not draw it either
    at.sidebar.selectbox(key="alternatives.view").set_value("axes").run()
    assert not at.exception and at.query_params["tensor_norm"] == "layer"
