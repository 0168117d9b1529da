"""Presenter mode in Chromium at a projector's 1280x720: opened by a link with present=1 on the home page, it
survives the tour's links to other pages, its chart ticks are at least 20 px in Plotly's computed layout, a
lesson far down its page opens at its chart with the notice beside it, and
the Next lesson button follows the tour."""

from __future__ import annotations

from urllib.parse import urlencode

import e2e_helpers as h
import pytest

from normviz.lessons import tour

pytestmark = pytest.mark.browser

PROJECTOR = {"width": 1280, "height": 720}
# the tick label size of every shown axis of every drawn chart, as Plotly laid it out
TICK_SIZES = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
    .filter(g => g._fullLayout).flatMap(g => Object.keys(g._fullLayout)
        .filter(k => /^[xy]axis[0-9]*$/.test(k)).map(k => g._fullLayout[k])
        .filter(a => a && a.visible !== false && a.showticklabels !== false && a.tickfont)
        .map(a => a.tickfont.size))"""


def test_presenter_mode_follows_the_tour_with_projector_sized_charts(browser, app_server):
    first, second = tour.stops()[:2]
    ctx = browser.new_context(viewport=PROJECTOR)
    try:
        page = ctx.new_page()
        h.goto_idle(page, app_server.base + "/?present=1")
        assert h.problems(page) == [], h.problems(page)
        page.get_by_role("link", name=first[1].preset).first.click()  # the tour's first lesson
        page.wait_for_url(f"**/{first[0].view}?**", timeout=30_000)
        h.wait_idle(page)
        page.wait_for_function(f"({TICK_SIZES})().length > 0", timeout=h.LOAD_TIMEOUT_S * 1000)
        assert h.query_of(page.url).get("present") == "1", page.url
        sizes = page.evaluate(TICK_SIZES)
        assert sizes and min(sizes) >= 20, sizes
        h.save_shot(page, "presenter-first-lesson")
        page.get_by_role("link", name=f"Next lesson: {second[1].preset} ›").click()
        page.wait_for_function(
            "p => new URLSearchParams(location.search).get('preset') === p || document.body.innerText.includes(p)",
            arg=second[1].preset,
            timeout=30_000,
        )
        h.wait_idle(page)
        assert h.problems(page) == [], h.problems(page)
        assert h.query_of(page.url).get("present") == "1", page.url
        notices = page.locator('[data-testid="stAlert"]').all_inner_texts()
        assert any(second[1].preset in n for n in notices), notices  # the next lesson's notice
    finally:
        ctx.close()


# whether the lesson's notice and its chart are on the first screen (below the app's header bar)
ON_SCREEN = """([preset, chart]) => {
    const shown = el => { const r = el.getBoundingClientRect(); return r.top >= 48 && r.top < innerHeight - 100; };
    const notices = [...document.querySelectorAll('[data-testid=stAlert]')].filter(a => a.innerText.includes(preset));
    return {notice: notices.some(shown), chart: [...document.querySelectorAll('.st-key-' + chart)].some(shown)};
}"""


def test_a_lesson_far_down_its_page_opens_at_its_chart_with_the_notice(browser, app_server):
    """Train vs inference is several screens long; its small-batch lesson's chart is near the bottom."""
    section, stop = next((s, p) for s, p in tour.stops() if p.chart == "tvi-sweep")
    ctx = browser.new_context(viewport=PROJECTOR)
    try:
        page = ctx.new_page()
        h.goto_idle(page, f"{app_server.base}/{section.view}?{urlencode({'preset': stop.preset, 'present': '1'})}")
        seen = h.stable(lambda: page.evaluate(ON_SCREEN, [stop.preset, stop.chart]))
        h.save_shot(page, "presenter-lesson-at-its-chart")
        assert seen == {"notice": True, "chart": True}, seen
        assert page.evaluate("() => document.querySelector('.st-key-tvi-sweep').getBoundingClientRect().top") > 0
        assert not h.problems(page)
    finally:
        ctx.close()
