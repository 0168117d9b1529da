"""Presenter mode (present=1): kept across pages and in every URL the app writes, projector-sized chart fonts,
a Next lesson button along the tour; and a preset's notice whenever the settings are that preset's."""

import json
from pathlib import Path

from live_pages import run_to_final
from streamlit.testing.v1 import AppTest

from normviz import views
from normviz.figures.style import FONT_SIZES
from normviz.lessons import tour

ROOT = Path(__file__).resolve().parents[1]
BY_HAND = views.view("by_hand")


def _app(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.query_params.update(query)
    return at


def _tick_sizes(at) -> set[int]:
    return {json.loads(c.proto.spec)["layout"]["xaxis"]["tickfont"]["size"] for c in at.get("plotly_chart")}


def _next_links(at) -> list[str]:
    return [p.proto.label for p in at.get("page_link") if p.proto.label.startswith("Next lesson")]


def test_present_1_survives_a_page_change_and_makes_chart_fonts_projector_sized():
    at = _app(present="1").run()
    assert not at.exception and at.sidebar.toggle(key="ui.present-switch").value
    run_to_final(at.switch_page("pages/activations.py"))
    assert not at.exception and at.query_params["present"] in ("1", ["1"])
    assert _tick_sizes(at) == {FONT_SIZES["large"]} and FONT_SIZES["large"] >= 20
    at.sidebar.toggle(key="ui.present-switch").set_value(False)
    run_to_final(at)
    assert _tick_sizes(at) == {FONT_SIZES["normal"]} and "present" not in at.query_params


def test_a_tour_stop_in_presenter_mode_offers_the_next_lesson():
    every = tour.stops()
    (_, stop), (_, following) = next((a, b) for a, b in zip(every, every[1:]) if a[0].view == "by_hand")
    at = _app(present="1").run()
    at.switch_page(BY_HAND.page)
    at.query_params.update({"preset": stop.preset, "present": "1"})
    at.run()
    assert not at.exception
    assert _next_links(at) == [f"Next lesson: {following.preset} ›"]
    at = _app().run()  # not presenting: no button
    at.switch_page(BY_HAND.page)
    at.query_params["preset"] = stop.preset
    at.run()
    assert not at.exception and _next_links(at) == []


def test_the_notice_shows_whenever_the_settings_are_a_presets_without_choosing_it():
    name, preset = next(iter(BY_HAND.presets.items()))
    at = _app().run()
    at.switch_page(BY_HAND.page)
    at.query_params.update(preset.spec(BY_HAND.spec_cls).to_query())  # a link made from the settings alone
    at.run()
    assert not at.exception
    assert any(i.value.startswith(f"**{name}.**") for i in at.info), [i.value for i in at.info]


def test_a_bad_present_value_is_named_and_dropped():
    at = _app(present="yes").run()
    assert not at.exception
    assert any("`present`" in w.value and "yes" in w.value for w in at.warning), [w.value for w in at.warning]
    assert "present" not in at.query_params and not at.sidebar.toggle(key="ui.present-switch").value


def test_every_tour_chart_is_a_chart_its_view_draws():
    for section, stop in tour.stops():
        if stop.chart:
            lesson = ROOT / "normviz" / "lessons" / f"{section.view}.py"  # the view's panels name their charts
            assert f'"{stop.chart}"' in lesson.read_text(), (section.view, stop)


def _main_elements(node) -> list:
    """The main area's elements in page order (blocks flattened)."""
    children = getattr(node, "children", None)
    if not children:
        return [node]
    return [e for child in children.values() for e in _main_elements(child)]


def test_in_presenter_mode_a_lessons_notice_and_next_link_stand_just_before_its_chart():
    section, stop = next((s, p) for s, p in tour.stops() if s.view == "running_stats" and p.chart == "rs-c")
    at = _app(present="1").run()
    at.switch_page(views.view(section.view).page)
    at.query_params.update({"preset": stop.preset, "present": "1"})
    run_to_final(at)
    assert not at.exception
    elements = _main_elements(at.main)
    chart = next(i for i, e in enumerate(elements) if getattr(e, "key", None) == "rs-c")
    scroll, notice, link = elements[chart - 3 : chart]
    assert scroll.key == "lesson-scroll" and link.proto.label.startswith("Next lesson")
    assert notice.value.startswith(f"**{stop.preset}.**") and len(at.info) == 1  # only there, not at the top
