"""End-to-end fixtures: the app under `streamlit run` and one headless Chromium for the whole session.

The pages are discovered from the app's navigation, so new pages are tested without editing these tests.
Screenshots go to $NORMVIZ_SHOTS (default /tmp/normviz-e2e-shots); the path is printed at the end.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # e2e_helpers, also for bench/load_test.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # malformed_queries, shared with the unit tests

import e2e_helpers as h  # noqa: E402


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The app under `streamlit run` on a free port; always terminated at the end."""
    # runs train in worker processes, one per core, as a deployed app does (the unit tests use threads)
    server = h.start_server(tmp_path_factory.mktemp("streamlit") / "server.log", env={"NORMVIZ_WORKERS": ""})
    try:
        yield server
    finally:
        h.stop_server(server)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(h.CHROMIUM):
        pytest.skip(f"{h.CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    from playwright.sync_api import sync_playwright  # CI installs it; a missing package is an error, not a skip

    with sync_playwright() as p:
        b = h.launch_chromium(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport=h.VIEWPORT)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def deep_link_first(app_server, browser):
    """The navigation a fresh server shows to its very first visitor arriving by a shared deep link (before
    anyone opened the home page). Taken before any other page is opened; (path, nav links)."""
    folders = set(re.findall(r"[\"']([\w.-]+)/[^\"']*\.py[\"']", (h.ROOT / "app.py").read_text())) | {"pages"}
    stems = sorted(f.stem for d in folders for f in (h.ROOT / d).glob("*.py") if f.stem not in ("home", "__init__"))
    path = stems[0] if stems else ""  # a page's file name: served by either kind of navigation
    ctx = browser.new_context(viewport=h.VIEWPORT)
    try:
        page = ctx.new_page()
        page.goto(f"{app_server.base}/{path}", wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="stSidebarNav"] a[href]', timeout=h.LOAD_TIMEOUT_S * 1000)
        h.wait_idle(page)  # the page may rerun itself through app.py once: its navigation comes with that run
        return path, h.nav_links(page), page.url
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def app_nav(app_server, browser, deep_link_first) -> list[tuple[str, str]]:
    """The navigation links of the home page (after the deep-link probe, which must come first)."""
    ctx = browser.new_context(viewport=h.VIEWPORT)
    try:
        page = ctx.new_page()
        h.goto_idle(page, app_server.base + "/")
        return h.nav_links(page)
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def app_pages(app_server, app_nav) -> list[h.AppPage]:
    """Every page listed in the app's navigation, home first."""
    pages = h.pages_from_nav(app_server.base, app_nav)
    assert len(pages) > 1, f"no navigation links found: {app_nav}"
    return pages
