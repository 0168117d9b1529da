"""Every page of the navigation in headless Chromium: it renders its charts without an exception, a sidebar
slider or select changes a chart, and the URL the app wrote reproduces the view in a fresh browser."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import e2e_helpers as h
import pytest

from normviz.lessons import running_stats as lesson

pytestmark = pytest.mark.browser

CHEAP = re.compile(r"step|epoch|iteration|frame|sample", re.I)  # moving these down makes a short run
MAX_ATTEMPTS = 4


def test_deep_link_on_a_fresh_server_gets_the_apps_navigation(deep_link_first, app_nav):
    """A teacher restarts the server and shares a link to a view: the first student to open it must get the
    app (its navigation, page config and torch settings), not Streamlit's pages/-folder fallback."""
    path, links, url = deep_link_first
    assert url.split("?")[0].rstrip("/").endswith("/" + path), f"the deep link to /{path} ended on {url}"
    assert [t for _, t in links] == [t for _, t in app_nav], (
        f"the first visit to /{path} on a fresh server showed the navigation {[t for _, t in links]} instead of "
        f"the app's {[t for _, t in app_nav]}: Streamlit ran the page file directly (v1 multipage mode, because "
        "a folder named pages/ sits next to app.py), skipping app.py (set_page_config, configure_torch, "
        "st.navigation) for every session until someone opens '/'"
    )


def _candidates(page) -> list[tuple[str, int, str, str]]:
    """Sidebar widgets worth moving, cheapest first: (kind, index, label, key to press or 'pick')."""
    sb = page.locator('[data-testid="stSidebarUserContent"]')
    sliders, selects = [], []
    for i, el in enumerate(sb.locator('[data-testid="stSlider"]').all()):
        if not el.is_visible():
            continue
        label = el.locator('[data-testid="stWidgetLabel"]').inner_text().strip()
        value = el.locator('input[type="range"]').first.get_attribute("aria-valuetext")
        ticks = el.locator('[data-testid="stSliderTickBar"]')
        at_min = ticks.count() > 0 and value == ticks.inner_text().split("\n")[0].strip()
        if CHEAP.search(label) and not at_min:
            sliders.append((0, ("slider", i, label, "Home")))
        else:  # at the maximum the URL stays the same and the next candidate is tried
            sliders.append((2, ("slider", i, label, "ArrowRight")))
    for i, el in enumerate(sb.locator('[data-testid="stSelectbox"]').all()):
        label = el.locator('[data-testid="stWidgetLabel"]').inner_text().strip() if el.is_visible() else ""
        if label and label.lower() != "preset":
            selects.append((1, ("select", i, label, "pick")))
    return [c for _, c in sorted(sliders + selects, key=lambda rc: rc[0])]


def _apply(page, kind: str, index: int, key: str) -> None:
    sb = page.locator('[data-testid="stSidebarUserContent"]')
    if kind == "slider":
        thumb = sb.locator('[data-testid="stSlider"]').nth(index).locator('input[type="range"]').first
        thumb.focus()
        page.keyboard.press(key)
        return
    box = sb.locator('[data-testid="stSelectbox"]').nth(index)
    current = box.locator("input").first.input_value()
    box.locator("input").first.click()
    options = page.locator('[role="listbox"] [role="option"]')
    options.first.wait_for(timeout=10_000)
    for text, option in zip(options.all_inner_texts(), options.all()):
        if text.strip() and text.strip() != current:
            option.click()
            return
    page.keyboard.press("Escape")


def _change_a_widget(page, default_url: str, before: list[str]) -> str:
    """Move one sidebar widget so that a chart changes; returns what was moved."""
    tried = []
    for kind, index, label, key in _candidates(page)[:MAX_ATTEMPTS]:
        if tried:  # start again from the defaults (a fresh session; the default run is cached)
            h.goto_idle(page, default_url)
        widgets, url = h.widget_state(page), page.url
        _apply(page, kind, index, key)
        try:
            page.wait_for_function("u => location.href !== u", arg=url, timeout=20_000)
        except Exception:  # the app did not write a new URL: the widget did not change the settings
            tried.append(f"{label}: URL unchanged")
            continue
        h.wait_idle(page)
        assert h.problems(page) == [], (label, h.problems(page))
        after = h.view_digest(page)
        if after != before and (h.chart_digest(page) or before[0].startswith("text:")):
            changed = {k: (widgets.get(k), v) for k, v in h.widget_state(page).items() if widgets.get(k) != v}
            assert changed, f"the charts changed but no widget did ({label})"
            return f"{kind} '{label}' ({key}): {changed}"
        tried.append(
            f"{label}: {len(h.chart_digest(page))} charts, {'same' if after == before else 'other'} view; "
            f"alerts {h.alerts(page)[:2]}"
        )
    raise AssertionError(f"no sidebar widget changed the view: {tried}")


def _check_page(browser, p: h.AppPage) -> None:
    ctx = browser.new_context(viewport=h.VIEWPORT)
    try:
        page = ctx.new_page()
        seconds = h.goto_idle(page, p.url)
        h.save_shot(page, f"{p.index:02d}-{p.slug}")
        assert h.problems(page) == [], h.problems(page)
        for viewport in (h.PHONE, h.VIEWPORT):  # Plotly lays the same charts out again for a phone's width
            page.set_viewport_size(viewport)
            page.wait_for_function(
                "w => [...document.querySelectorAll('.main-svg')].every(s => s.getBoundingClientRect().width <= w)",
                arg=viewport["width"],
            )
            assert h.stable(lambda: h.chart_layout_problems(page)) == [], viewport
        default_url, charts = page.url, h.chart_digest(page)
        if not h.query_of(default_url):  # a page without settings (home): nothing to change or share
            h.report(f"{p.slug}: first load {seconds:.1f} s, {len(charts)} charts, no settings")
            return
        # a page without charts (tables and numbers, e.g. BN by hand) is compared by its text instead
        moved = _change_a_widget(page, default_url, h.view_digest(page))
        shared, widgets, after = page.url, h.stable(lambda: h.widget_state(page)), h.view_digest(page)
    finally:
        ctx.close()
    h.report(f"{p.slug}: first load {seconds:.1f} s, {len(charts)} charts; moved {moved[:90]}")

    fresh = browser.new_context(viewport=h.VIEWPORT)  # the shared link, opened by someone else
    try:
        page = fresh.new_page()
        h.goto_idle(page, shared)
        assert h.problems(page) == [], h.problems(page)
        assert h.query_of(page.url) == h.query_of(shared), "the app rewrote the shared URL"
        assert h.stable(lambda: h.widget_state(page)) == widgets, "the shared URL gave other widget values"
        assert h.view_digest(page) == after, "the shared URL gave other chart data (or text on a chartless page)"
    finally:
        fresh.close()


def test_every_page_renders_reacts_and_shares(browser, app_pages, subtests):
    for p in app_pages:
        with subtests.test(msg=p.slug):
            _check_page(browser, p)


def _view_link(page) -> str:
    """The "Link to this view" the sidebar offers students."""
    return page.locator('[data-testid="stSidebar"] [data-testid="stCode"]').first.inner_text().strip()


def test_a_link_with_main_area_controls_and_a_preset_reproduces_them(app_server, browser):
    preset = "tiny momentum lags"
    notice = lesson.PRESETS[preset].notice[:40]
    query = urlencode({"preset": preset, "layer": 3, "population": "eval", "momenta_shown": "0,2"})
    teacher = browser.new_context(viewport=h.VIEWPORT).new_page()
    student = browser.new_context(viewport=h.VIEWPORT).new_page()
    try:
        h.goto_idle(teacher, f"{app_server.base}/running_stats?{query}")
        link = _view_link(teacher)
        assert all(part in link for part in ("layer=3", "population=eval", "momenta_shown=0%2C2")), link
        shown = h.widget_state(teacher, "main")
        assert shown["stSelectbox:Layer (A)"] == "layer 3", shown
        assert any(notice in text for text in h.alerts(teacher, "Info"))
        h.goto_idle(student, link)  # a fresh browser: no session, only the link
        settings = {k: v for k, v in h.widget_state(teacher).items() if k != "stSelectbox:Preset"}
        assert h.widget_state(student, "main") == shown
        assert {k: v for k, v in h.widget_state(student).items() if k != "stSelectbox:Preset"} == settings
        assert h.chart_digest(student) == h.chart_digest(teacher) and not h.problems(student)
        assert any(notice in text for text in h.alerts(student, "Info"))  # the settings are the preset's
        student.locator('[data-testid="stRadio"]').get_by_text("PreciseBN", exact=False).first.click()
        h.wait_idle(student)
        assert "population=precise" in _view_link(student) and "population=precise" in student.url
    finally:
        teacher.context.close()
        student.context.close()
