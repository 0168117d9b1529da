"""Every page opened with malformed query strings (built from the field names in the URL the page writes;
on a page without settings, such as home, every name is unknown): no exception element, no traceback, a
warning naming the bad parameter, and the URL rewritten to the defaults.

Each malformed URL falls back to the page's default settings, whose run the server has cached and whose
charts test_pages_browser.py draws; so the fuzz tabs skip drawing charts (NORMVIZ_FUZZ_DRAW_CHARTS=1 draws
them too), which keeps about 200 page loads within a few minutes on two cores."""

from __future__ import annotations

import os
import time

import e2e_helpers as h
import pytest
from malformed_queries import malformed_queries, markup_queries, names_key, spec_kinds

pytestmark = pytest.mark.browser

MALFORMED_PER_PAGE = 30  # the minimum that must warn, plus one odd-but-valid case
TABS = 3  # page loads in flight at once (each is a session of its own; the browser's work overlaps)


# a page without settings knows no parameter: the cases use these names, every one unknown to it
SETTINGLESS_PROBE = {
    "seed": "0",
    "lr": "0.1",
    "epochs": "20",
    "activation": "relu",
    "show": "true",
    "momenta": "0.1,0.01",
}


def _pick(defaults: dict[str, str]):
    fields = defaults or SETTINGLESS_PROBE
    cases = malformed_queries(fields, spec_kinds(fields))  # kinds guessed from the defaults if no class fits
    must_warn = [c for c in cases if c.expect is not None]
    every = len(must_warn) / MALFORMED_PER_PAGE  # spread over every kind of case, not the first ones
    must_warn = [must_warn[int(i * every)] for i in range(min(MALFORMED_PER_PAGE, len(must_warn)))]
    return must_warn + [c for c in cases if c.expect is None][:1]


def _check(tab, case, defaults: dict[str, str]) -> str | None:
    """What is wrong with this tab after loading the case, or None."""
    if found := h.problems(tab):
        return f"{case.label}: {found}"
    if case.expect is None:
        return None
    messages = h.alert_markdown(tab, "Warning")
    if not names_key(messages, case.expect):
        return f"{case.label}: no warning naming {case.expect[:40]!r}; alerts {[m[:120] for m in messages]}"
    if h.query_of(tab.url) != defaults:
        extra = {k: v[:40] for k, v in h.query_of(tab.url).items() if defaults.get(k) != v}
        return f"{case.label}: the URL was not reset to the defaults: {extra}"
    return None


def _fuzz_page(ctx, p: h.AppPage) -> int:
    first = ctx.new_page()
    h.goto_idle(first, p.url)  # the default run, drawn as a student sees it (cached by the server from now on)
    if not os.environ.get("NORMVIZ_FUZZ_DRAW_CHARTS"):  # the page test draws the same (default) charts
        h.skip_chart_drawing(ctx)
    tabs = [first] + [ctx.new_page() for _ in range(TABS - 1)]
    defaults = h.query_of(first.url)  # {} on a page without settings (home): every parameter is unknown
    cases = _pick(defaults)
    assert sum(c.expect is not None for c in cases) >= 30
    failures, t = [], time.monotonic()
    for start in range(0, len(cases), TABS):
        batch = list(zip(tabs, cases[start : start + TABS]))
        for tab, case in batch:
            tab.goto(f"{p.url}?{case.query}", wait_until="commit")
        for tab, case in batch:
            try:
                h.wait_idle(tab, timeout_s=120, settle_s=0.2)
            except Exception as exc:  # a page that never settles is a failure of this case, not of the run
                failures.append(f"{case.label}: not idle ({str(exc).splitlines()[0]})")
                continue
            if problem := _check(tab, case, defaults):
                failures.append(problem)
    h.report(
        f"fuzz {p.slug}: {len(cases)} malformed URLs ({sum(c.expect is not None for c in cases)} must warn), "
        f"{len(failures)} failures, {time.monotonic() - t:.0f} s"
    )
    assert not failures, f"{p.slug}: {len(failures)} of {len(cases)} malformed URLs failed:\n" + "\n".join(failures)
    return len(cases)


def test_fuzz_every_page_with_malformed_urls(browser, app_pages, subtests):
    fuzzed = 0
    for p in app_pages:
        with subtests.test(msg=p.slug):
            ctx = browser.new_context(viewport=h.VIEWPORT)
            try:
                fuzzed += _fuzz_page(ctx, p) > 0
            finally:
                ctx.close()
    assert fuzzed == len(app_pages)


MARKUP_PAGES = ("activations",)  # 16 URLs on one page: the full fuzz above already takes minutes


def test_markup_and_odd_text_in_urls_render_as_plain_text(browser, app_pages):
    """Markdown, huge numbers, unicode and an RTL override in URL keys and values (issue 19): each warning
    names its parameter as inline code, the user's text creates no image, link, emphasis, colour or icon,
    and nothing is fetched from the addresses it names."""
    pages = [p for p in app_pages if p.slug in MARKUP_PAGES]
    assert len(pages) == len(MARKUP_PAGES), [p.slug for p in app_pages]
    ctx = browser.new_context(viewport=h.VIEWPORT)
    fetched = []
    ctx.on("request", lambda r: fetched.append(r.url) if "127.0.0.1:9/" in r.url else None)
    failures, loads, t = [], 0, time.monotonic()
    try:
        h.skip_chart_drawing(ctx)
        tab = ctx.new_page()
        for p in pages:
            h.goto_idle(tab, p.url)
            defaults = h.query_of(tab.url)
            for case in markup_queries(defaults, spec_kinds(defaults)):
                tab.goto(f"{p.url}?{case.query}", wait_until="commit")
                h.wait_idle(tab, timeout_s=120, settle_s=0.2)
                loads += 1
                messages = h.alert_markdown(tab, "Warning")
                if found := h.problems(tab):
                    failures.append(f"{p.slug} {case.label}: {found}")
                # Streamlit rewrites ":material/" to ":material_" in all Markdown, code too: still plain text
                if not names_key(messages, case.expect.replace(":material/", ":material_")):
                    failures.append(f"{p.slug} {case.label}: no warning naming it as code: {messages}")
                if made := h.alert_markup(tab):
                    failures.append(f"{p.slug} {case.label}: the message rendered markup {made}")
                if any("\u202e" in m for m in messages):
                    failures.append(f"{p.slug} {case.label}: a raw RTL override in {messages}")
    finally:
        ctx.close()
    h.report(f"markup fuzz: {loads} URLs on {len(pages)} pages, {len(failures)} failures, {time.monotonic() - t:.0f} s")
    assert not fetched, fetched
    assert not failures, "\n".join(failures)
