"""Figures out of the app: standalone interactive HTML (plotly.js embedded, works offline) and PNG.

PNG goes through kaleido 1.x, which drives a Chromium browser: the system's (`BROWSER_PATH`, else
`chromium` on the PATH). One browser serves the whole process; it starts on the first PNG (about
4 s) and then renders a figure in about 0.2 s.
"""

from __future__ import annotations

import html
import os
import shutil
import threading

import plotly.graph_objects as go

EXPORT_TEMPLATE = "plotly_white"  # slides and handouts: white background, whatever the app's theme
PNG_WIDTH, PNG_SCALE, DEFAULT_HEIGHT = 1200, 2, 500
_kaleido_lock = threading.Lock()  # kaleido's sync server pairs requests and answers through one queue


def for_export(fig: go.Figure) -> go.Figure:
    """A copy of the figure with the export template (the app draws it in the Streamlit theme)."""
    return go.Figure(fig).update_layout(template=EXPORT_TEMPLATE)


def figure_html(fig: go.Figure, title: str = "normviz") -> str:
    """One self-contained interactive HTML page: plotly.js is embedded, nothing is fetched."""
    page = for_export(fig).to_html(
        include_plotlyjs=True, full_html=True, config={"displaylogo": False}, default_width="100%", auto_play=False
    )
    return page.replace("<head>", f"<head><title>{html.escape(title)}</title>", 1)


def chromium_path() -> str | None:
    """The browser kaleido drives, or None when there is none."""
    for candidate in (
        os.environ.get("BROWSER_PATH"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def figure_png(fig: go.Figure, width: int = PNG_WIDTH, scale: float = PNG_SCALE) -> bytes:
    """The figure as PNG, rendered by plotly.js in headless Chromium (kaleido)."""
    import kaleido  # imported here: it is only needed when someone asks for a PNG

    path = chromium_path()
    if path is None:
        raise RuntimeError("PNG export needs Chromium: install it or set BROWSER_PATH")
    fig = for_export(fig)
    # a still: no play button, step slider nor frames (the figure's own data is the frame the page shows last)
    fig.layout.updatemenus, fig.layout.sliders, fig.frames = (), (), ()
    opts = dict(format="png", width=width, height=fig.layout.height or DEFAULT_HEIGHT, scale=scale)
    with _kaleido_lock:
        # mathjax=False: kaleido would otherwise fetch MathJax from a CDN, and the app works offline
        kaleido.start_sync_server(path=path, mathjax=False, silence_warnings=True)
        return kaleido.calc_fig_sync(fig.to_dict(), opts=opts)
