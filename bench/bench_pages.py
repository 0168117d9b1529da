"""(5) Page latency through streamlit.testing.v1.AppTest: app.py, switch_page to each page, run it twice
in one session, first with an empty result cache (the page trains), then again (the result comes from
the process-wide normviz.runs.STORE). AppTest reports the script run time, not the browser's drawing.

    python -m bench --only pages
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from bench.common import Row
from normviz.runs import STORE

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
TARGET_CACHED, TARGET_UNCACHED = 0.3, 2.0


def app_pages() -> list[str]:
    """The page files app.py registers, in the navigation's order (view('name', ...) or st.Page('pages/..'))."""
    pages = []
    for node in ast.walk(ast.parse(APP.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            arg = node.args[0].value
            if name == "Page" and isinstance(arg, str) and arg.startswith("pages/"):
                pages.append(arg)
            elif name == "view" and isinstance(arg, str):
                pages.append(f"pages/{arg}.py")
    return list(dict.fromkeys(pages))


def timed_run(at: AppTest) -> float:
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
    return seconds


def page_times(page: str) -> tuple[float, float]:
    """(uncached, cached) script run time of one page with its default settings."""
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.run()
    at.switch_page(page)
    STORE.clear()
    uncached = timed_run(at)
    cached = timed_run(at)
    return uncached, cached


def run(quick: bool = False) -> list[Row]:
    pages = app_pages()
    for page in pages:  # warm-up: imports and first-use costs, as on a server that has been up a while
        page_times(page)
    rows = []
    for page in pages:
        uncached, cached = page_times(page)
        name = Path(page).stem
        ok = uncached < TARGET_UNCACHED and cached < TARGET_CACHED
        rows.append(
            Row(
                f"(5) page {name}: uncached / cached",
                f"{uncached:.2f} s / {cached:.2f} s",
                "",
                "",
                f"< {TARGET_UNCACHED:g} s / < {TARGET_CACHED:g} s",
                ok,
                "" if ok else _why(uncached, cached),
            )
        )
    return rows


def _why(uncached: float, cached: float) -> str:
    parts = []
    if uncached >= TARGET_UNCACHED:
        parts.append("uncached over target")
    if cached >= TARGET_CACHED:
        parts.append("cached over target")
    return ", ".join(parts)
