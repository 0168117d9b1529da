"""Streamlit helpers shared by the pages (the only backend module that imports streamlit).

- `spec_controls`: sidebar widgets generated from a Spec's fields, seeded from the URL (bad values
  fall back to the default with a warning naming the parameter), presets, and the URL kept in sync.
- `show_run`: runs an experiment through the shared RunStore and redraws while it trains.
- `chart`: a Plotly chart with a unique key per redraw and lazy PNG/HTML downloads; `table_download`: CSV.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from normviz.config import DataSpec, Preset, Spec, SpecError, unknown_parameter
from normviz.data import DataError
from normviz.figures import export
from normviz.figures.style import FONT_SIZES
from normviz.runs import STORE

PRESET_PARAM = "preset"
CUSTOM = "(custom settings)"
_local = threading.local()  # the redraw pass of the current script run, for unique chart keys


def enter_through_app() -> None:
    """Make sure this page runs inside app.py. On a fresh server, until some session has called st.navigation,
    Streamlit treats the folder named pages/ next to app.py as a v1 multipage app: a shared deep link then runs
    the page file alone, without app.py's page config, torch settings and navigation. Turning that mode off
    (a process-wide flag that st.navigation itself clears) and rerunning sends this and every later run
    through app.py, on the same page with the same query."""
    from streamlit.runtime.pages_manager import PagesManager  # no public switch for this

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def _nice_grid(lo: float, hi: float) -> list[float]:
    """1-2-5 steps per decade between lo and hi (and 0 when lo is 0)."""
    start = lo if lo > 0 else 1e-4
    grid = [m * 10.0**e for e in range(math.floor(math.log10(start)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
    grid = [float(f"{v:.6g}") for v in grid if start <= v * (1 + 1e-9) and v <= hi * (1 + 1e-9)]
    return ([0.0] if lo == 0 else []) + grid


def _fields_of(spec_cls) -> list[str]:
    return [f.name for f in dataclasses.fields(spec_cls)]


def _label(name: str, info: dict) -> str:
    return info.get("label") or name.replace("_", " ").capitalize()


def _widget(spec_cls, page: str, name: str, info: dict, container):
    key = f"{page}.{name}"
    label, help_ = _label(name, info), info["help"]
    kind, choices = info["kind"], info.get("choices")
    if kind is bool:
        return container.toggle(label, key=key, help=help_)
    if kind is tuple and choices:  # several of a fixed set: kept in the order of the choices
        picked = container.multiselect(label, choices, key=key, help=help_)
        return tuple(c for c in choices if c in picked)
    if choices:
        return container.selectbox(label, choices, key=key, help=help_)
    if kind is int and info.get("log"):  # powers of two, e.g. batch sizes
        grid = sorted(
            {2**i for i in range(int(math.log2(info["hi"])) + 1) if 2**i >= info["lo"]} | {st.session_state[key]}
        )
        return container.select_slider(label, grid, key=key, help=help_)
    if kind is float and info.get("log"):
        grid = sorted(set(_nice_grid(info["lo"], info["hi"])) | {st.session_state[key]})
        return container.select_slider(label, grid, key=key, help=help_, format_func=lambda v: f"{v:g}")
    if kind in (int, float) and info.get("lo") is not None and info.get("hi") is not None:
        step = 1 if kind is int else (info["hi"] - info["lo"]) / 100
        return container.slider(label, info["lo"], info["hi"], key=key, help=help_, step=step)
    if kind is tuple:
        text = container.text_input(label, key=key, help=help_ + " (comma-separated)")
        try:
            return spec_cls.parse_field(name, text)
        except SpecError as exc:
            container.error(str(exc))
            return info["default"]
    return container.text_input(label, key=key, help=help_)


def _to_widget_value(info: dict, value):
    if info["kind"] is tuple and info.get("choices"):
        return list(value)
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if info["kind"] is tuple else value


def _seed(page: str, spec: Spec, names, info: dict):
    for name in names:
        st.session_state[f"{page}.{name}"] = _to_widget_value(info[name], getattr(spec, name))


def spec_controls(
    spec_cls, page: str, *, fields: list[str] | None = None, presets: dict[str, Preset] | None = None, container=None
) -> Spec:
    """The page's Spec from its sidebar widgets; first seeded from the URL (or a preset in it)."""
    container = container or st.sidebar
    info = spec_cls.field_info()
    names = fields or list(info)
    presets = presets or {}
    preset_key = f"{page}.{PRESET_PARAM}"
    # the first run of this page in this session, or a link naming a preset (the home page's tour): the URL
    # sets the widgets; afterwards the URL follows the widgets (and loses 'preset', so it applies once)
    if f"{page}.{names[0]}" not in st.session_state or PRESET_PARAM in st.query_params:
        params = {k: st.query_params.get_all(k) for k in st.query_params}
        warnings, start = [], spec_cls()
        wanted = params.pop(PRESET_PARAM, [CUSTOM])[-1]
        if wanted in presets:
            start = presets[wanted].spec(spec_cls)
        elif wanted != CUSTOM:
            warnings.append(f"URL parameter 'preset' names no preset of this page ({wanted[:40]!r}).")
            wanted = CUSTOM
        from_url, url_warnings = spec_cls.from_query(params)
        explicit = {k: getattr(from_url, k) for k in params if k in info and getattr(from_url, k) != info[k]["default"]}
        try:
            spec = start.replace(**explicit) if explicit else start
        except SpecError as exc:  # each value fits the defaults but not the preset's settings
            url_warnings.append(f"URL settings do not fit the preset ({exc}); using the preset's.")
            spec = start
        _seed(page, spec, list(info), info)
        st.session_state[preset_key] = wanted
        st.session_state[f"{page}.hidden"] = {k: getattr(spec, k) for k in info if k not in names}
        for w in warnings + url_warnings:
            st.warning(w, icon=":material/warning:")

    if presets:

        def apply_preset():
            chosen = st.session_state[preset_key]
            if chosen in presets:
                _seed(page, presets[chosen].spec(spec_cls), names, info)

        container.selectbox(
            "Preset",
            [CUSTOM] + list(presets),
            key=preset_key,
            on_change=apply_preset,
            help="named scenarios: each sets every control and says what to notice",
        )
    # the lesson's knobs first; data, seed and telemetry settings wait in an expander
    secondary = set(_fields_of(DataSpec)) | {"probe_every"}
    main = [n for n in names if n not in secondary]
    values = {name: _widget(spec_cls, page, name, info[name], container) for name in main}
    rest = [n for n in names if n in secondary]
    if rest:
        more = container.expander("Data, seed and recording")
        values |= {name: _widget(spec_cls, page, name, info[name], more) for name in rest}
    values.update(st.session_state.get(f"{page}.hidden", {}))
    try:
        spec = spec_cls(**values)
    except SpecError as exc:
        st.error(f"These settings cannot run: {exc}")
        st.stop()
    chosen = st.session_state.get(preset_key, CUSTOM)
    if chosen in presets:
        if spec == presets[chosen].spec(spec_cls):
            st.info(f"**{chosen}.** {presets[chosen].notice}", icon=":material/school:")
        else:
            st.caption(f"Settings changed since the preset “{chosen}”.")
    query = spec.to_query()
    if {k: st.query_params.get(k) for k in st.query_params} != query:
        st.query_params.from_dict(query)
    _link(container, query)
    return spec


def settingless_page() -> None:
    """A page without settings (home): each URL parameter is named in a warning, and the URL is cleared."""
    keys = list(st.query_params)
    for key in keys:
        st.warning(unknown_parameter(key, ": this page has no settings"), icon=":material/warning:")
    if keys:
        st.query_params.clear()


def _link(container, query: dict):
    base = st.context.url
    if base:
        container.caption("Link to this view (copy button on the right):")
        container.code(f"{base}?{urlencode(query)}", language=None, wrap_lines=True)


def reproduce(code: str):
    """The "Reproduce in PyTorch" expander: a short runnable snippet generated from the settings."""
    with st.expander("Reproduce in PyTorch"):
        st.code(code, language="python")


def font_size() -> int:
    """Chart font size: a sidebar toggle makes every chart projector-sized."""
    large = st.sidebar.toggle("Large chart fonts (projector)", key="large_fonts")
    return FONT_SIZES["large" if large else "normal"]


def chart(fig: go.Figure, name: str):
    """Draw a figure with HTML and PNG downloads; during live redraws the key carries the pass so repeated
    frames never clash, and there are no downloads (the figure is replaced half a second later)."""
    redraw = getattr(_local, "redraw", None)
    key = name if redraw is None else f"{name}@{redraw}"
    st.plotly_chart(fig, key=key, config={"displaylogo": False, "toImageButtonOptions": {"filename": name}})
    if redraw is not None:
        return
    # the files are made only when a button is clicked (a callable `data`), on another thread
    row = st.container(horizontal=True, gap="small")
    row.download_button(
        "HTML",
        lambda: export.figure_html(fig, name),
        file_name=f"{name}.html",
        mime="text/html",
        key=f"{name}.html",
        on_click="ignore",
        type="tertiary",
        icon=":material/download:",
        help="This chart as one interactive HTML file that works offline (for slides)",
    )
    png_ok = _chromium() is not None
    row.download_button(
        "PNG",
        (lambda: export.figure_png(fig)) if png_ok else b"",
        file_name=f"{name}.png",
        mime="image/png",
        key=f"{name}.png",
        on_click="ignore",
        type="tertiary",
        icon=":material/download:",
        disabled=not png_ok,
        help="This chart as a 2400-pixel-wide PNG, drawn by Chromium"
        if png_ok
        else "PNG export needs Chromium on the server (or BROWSER_PATH set to it)",
    )


def table_download(table, name: str, index: bool = False):
    """A CSV download of a results table (a DataFrame or rows of dicts; made when clicked); nothing during
    live redraws."""
    if getattr(_local, "redraw", None) is not None:
        return
    to_csv = lambda: pd.DataFrame(table).to_csv(index=index)
    st.download_button(
        "CSV",
        to_csv,
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"{name}.csv",
        on_click="ignore",
        type="tertiary",
        icon=":material/download:",
        help="This table as CSV",
    )


@functools.cache
def _chromium() -> str | None:
    return export.chromium_path()


def show_run(
    spec: Spec, run: Callable[[Spec], Iterator], render: Callable[[object, bool], None], label: str = "Training"
):
    """Render a run's result, redrawing while it trains. render(result, final) draws the charts.

    A cached result draws at once. A bad setting or unusable data becomes a message, not a traceback.
    Stopping the script (a slider moved, the tab closed) stops the training at its next redraw.
    """
    cached = STORE.get(spec.key())
    if cached is not None:
        render(cached, True)
        return cached
    bar, area = st.progress(0.0, text=f"{label}…"), st.empty()
    result, next_redraw = None, 0.0
    try:
        for i, result in enumerate(STORE.stream(spec.key(), lambda: run(spec))):
            if result.done:  # let the stream end: the store caches a run only when its generator completes
                continue
            bar.progress(min(result.progress, 1.0), text=f"{label}… {result.progress:.0%}")
            if time.monotonic() < next_redraw:
                continue
            started = time.monotonic()
            _local.redraw = i
            try:
                with area.container():
                    render(result, False)
            finally:
                _local.redraw = None
            # on a loaded machine a redraw can outlast the training between two: keep 2/3 of the time for training
            next_redraw = time.monotonic() + 2 * (time.monotonic() - started)
    except (SpecError, DataError, OSError) as exc:  # OSError: e.g. a data_path from the URL that is a device
        bar.empty()
        st.error(f"Cannot run with these settings: {exc}")
        st.stop()
    bar.empty()
    with area.container():
        render(result, True)
    return result
