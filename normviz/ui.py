"""Streamlit helpers shared by the pages (the only backend module that imports streamlit).

- `spec_controls`: sidebar widgets generated from a Spec's fields, seeded from the URL (bad values
  fall back to the default with a warning naming the parameter), presets, and the URL kept in sync.
- `show_run`: submits an experiment to the run service and follows it live (a fragment on a timer).
- `chart`: a Plotly chart, one key on every frame, with lazy PNG/HTML downloads; `table_download`: CSV.
- `presenter_mode` (projector fonts, Next lesson, kept across pages) and `share` (the class link and its QR
  code, on NORMVIZ_PUBLIC_URL).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pandas as pd
import plotly
import plotly.graph_objects as go
import segno
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from normviz import cost, data, playback, views
from normviz.config import DataSpec, Preset, Spec, SpecError, quote, unknown_parameter
from normviz.data import DataError
from normviz.figures import compare, export
from normviz.figures.style import FONT_SIZES
from normviz.lessons import tour
from normviz.panels import Chart, Panel, Table, Worked
from normviz.service import QueueFull, default_service

PRESET_PARAM = "preset"
PRESENT_PARAM = "present"  # present=1 in a link turns presenter mode on, present=0 off
CUSTOM = "(custom settings)"
LIVE_FRAME_S = 0.25  # a live run's fragment timer: about 4 frames a second reach the browser
MAX_FRAME_S = 2.0  # the longest timer a slow frame can set
_FAILED = "ui.failed"  # session state: spec key -> why its run failed, shown with Retry until clicked
_HANDLES = "ui.handles"  # session state: show_run's label -> the handle of the run it follows
_PLAYBACK = "ui.playback"  # session state: show_run's label -> its playback.Playback (a place on the run's tape)
_INTERVALS = "ui.frame_intervals"  # session state: show_run's label -> its live fragment's timer (seconds)
_PRESENT = "ui.present"  # session state: presenter mode (a plain key, not a widget's: it outlives page changes)
_LESSON = "ui.lesson"  # session state: the _Lesson the page shows beside its chart (presenter mode), or None
_SHOWING = "ui.showing"  # session state: (page, query) of the settings the page shows now
_DRAWN = "ui.drawn"  # session state: page -> {chart name: figure} of its latest final draw
_PINNED = "ui.pinned"  # session state: page -> its _Pin
_PAGE = "ui.page"  # session state: the URL path of the page the last run showed
_LESSONS_OPENED = "ui.lessons-opened"  # session state: how many times a page opened on a lesson
_KEPT = "ui.kept"  # session state: show_control's widget key -> its last value (Streamlit forgets an undrawn widget's)
_PRESENT_SWITCH = "ui.present-switch"  # the sidebar switch's widget key, seeded from _PRESENT on every run
_local = threading.local()  # live=True during a live frame


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
    """The widget of one setting. Its value is also passed as the widget's own default: a browser that mounts
    the widget after a later run's message (a busy machine) starts it from that default, and Streamlit's is
    the minimum, which the browser would then send back as the user's choice."""
    key = f"{page}.{name}"
    label, help_ = _label(name, info), info["help"]
    kind, choices = info["kind"], info.get("choices")
    current = st.session_state.get(key)
    if name == "data_file":
        return _data_file_select(key, label, help_, container)
    if name == "upload":
        return data_upload(page, container)
    if kind is bool:
        return container.toggle(label, bool(current), key=key, help=help_)
    if kind is tuple and choices:  # several of a fixed set: kept in the order of the choices
        picked = container.multiselect(label, choices, default=current, key=key, help=help_)
        return tuple(c for c in choices if c in picked)
    if choices:
        names = info.get("choice_labels") or {}
        return container.selectbox(
            label,
            choices,
            index=_index(choices, current),
            key=key,
            help=help_,
            format_func=lambda c: names.get(c, str(c)),
        )
    if kind is int and info.get("log"):  # powers of two, e.g. batch sizes
        grid = sorted({2**i for i in range(int(math.log2(info["hi"])) + 1) if 2**i >= info["lo"]} | {current})
        return container.select_slider(label, grid, value=current, key=key, help=help_)
    if kind is float and info.get("log"):
        grid = sorted(set(_nice_grid(info["lo"], info["hi"])) | {current})
        return container.select_slider(label, grid, value=current, key=key, help=help_, format_func=lambda v: f"{v:g}")
    if kind in (int, float) and info.get("lo") is not None and info.get("hi") is not None:
        step = 1 if kind is int else (info["hi"] - info["lo"]) / 100
        return container.slider(label, info["lo"], info["hi"], current, key=key, help=help_, step=step)
    if kind is tuple:
        text = container.text_input(label, current, key=key, help=help_ + " (comma-separated)")
        try:
            return spec_cls.parse_field(name, text)
        except SpecError as exc:
            container.error(str(exc))
            return info["default"]
    return container.text_input(label, current, key=key, help=help_)


def _index(choices, value) -> int:
    return list(choices).index(value) if value in choices else 0


def _to_widget_value(info: dict, value):
    if info["kind"] is tuple and info.get("choices"):
        return list(value)
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if info["kind"] is tuple else value


def _seed(page: str, spec: Spec, names, info: dict):
    for name in names:
        st.session_state[f"{page}.{name}"] = _to_widget_value(info[name], getattr(spec, name))


def view_controls(name: str, rewrite_on_switch: tuple[str, str, Callable[[str], str]] | None = None) -> Spec:
    """The view's Spec from its sidebar: the Spec class, presets and settings that views.py names for it.

    rewrite_on_switch = (switch, field, rewrite): when the setting `switch` changes and the text setting
    `field` does not, `field` is rewritten (Running statistics: a convention switch keeps the same momenta)."""
    view = views.view(name)
    if rewrite_on_switch is None:
        return spec_controls(view.spec_cls, name, fields=view.sidebar, presets=view.presets)
    switch, field, rewrite = rewrite_on_switch
    key, last_key = f"{name}.{field}", f"{name}.{field}.before-{switch}"
    last_text, last_switch = st.session_state.get(last_key, (None, None))
    if (
        last_switch
        and st.session_state.get(f"{name}.{switch}") != last_switch
        and st.session_state.get(key) == last_text
    ):
        st.session_state[key] = rewrite(last_text)
    spec = spec_controls(view.spec_cls, name, fields=view.sidebar, presets=view.presets)
    st.session_state[last_key] = (st.session_state.get(key), getattr(spec, switch))
    return spec


def spec_controls(
    spec_cls, page: str, *, fields: list[str] | None = None, presets: dict[str, Preset] | None = None, container=None
) -> Spec:
    """The page's Spec from its sidebar widgets; first seeded from the URL (or a preset in it)."""
    container = container or st.sidebar
    info = spec_cls.field_info()
    names = [n for n in fields or list(info) if info[n]["scope"] != "cli"]  # a browser names no server path
    presets = presets or {}
    preset_key = f"{page}.{PRESET_PARAM}"
    # the first run of this page in this session, or a link naming a preset (the home page's tour): the URL
    # sets the widgets; afterwards the URL follows the widgets (and loses 'preset', so it applies once).
    # A widget whose state Streamlit dropped (a run interrupted before it was drawn) is seeded from the URL
    # too, which still holds the last settings: unseeded, it would show its minimum.
    missing = [n for n in names if f"{page}.{n}" not in st.session_state]
    first = len(missing) == len(names) or PRESET_PARAM in st.query_params
    _local.shown_in_url = {}
    if missing or first:
        skip = {PRESENT_PARAM, *_shown_names(page)}  # the main-area controls check their own (show_control)
        params = {k: st.query_params.get_all(k) for k in st.query_params if k not in skip}
        _local.shown_in_url = {k: st.query_params.get_all(k) for k in _shown_names(page) if k in st.query_params}
        warnings, start = [], spec_cls()
        wanted = params.pop(PRESET_PARAM, [CUSTOM])[-1]
        if wanted in presets:
            start = presets[wanted].spec(spec_cls)
        elif wanted != CUSTOM:
            warnings.append(f"URL parameter `preset` names no preset of this page ({quote(wanted)}).")
            wanted = CUSTOM
        from_url, url_warnings = spec_cls.from_query(params)
        explicit = {k: getattr(from_url, k) for k in params if k in info and getattr(from_url, k) != info[k]["default"]}
        try:
            spec = start.replace(**explicit) if explicit else start
        except SpecError as exc:  # each value fits the defaults but not the preset's settings
            url_warnings.append(f"URL settings do not fit the preset ({exc}); using the preset's.")
            spec = start
        if not first:
            _seed(page, spec, missing, info)
        else:
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
    rejected = values.get("upload", "") is None  # data_upload has said what is wrong with the file
    if rejected:
        values["upload"] = ""
    try:
        spec = spec_cls(**values)
    except SpecError as exc:
        if not (rejected and values.get("dataset") == "upload"):
            st.error(f"These settings cannot run: {exc}")
        st.stop()
    chosen = st.session_state.get(preset_key, CUSTOM)
    # the notice shows whenever the settings are a preset's (also when they come back to it, or from a link)
    matching = [n for n in ([chosen] if chosen in presets else []) + list(presets) if spec == presets[n].spec(spec_cls)]
    lesson = _lesson(page, matching[0], presets[matching[0]].notice) if matching else None
    if matching and lesson is None:
        st.info(f"**{matching[0]}.** {presets[matching[0]].notice}", icon=":material/school:")
        _next_lesson(page, matching[0])
    elif chosen in presets and not matching:
        st.caption(f"Settings changed since the preset “{chosen}”.")
    query = spec.to_query()
    query |= _shown_params(page, query)
    written = query | ({PRESENT_PARAM: "1"} if presenting() else {})
    if {k: st.query_params.get(k) for k in st.query_params} != written:
        st.query_params.from_dict(written)
    _local.link = (container.empty(), query)  # the link for students (without presenter mode); show_control updates it
    _link(*_local.link)
    _pin_controls(page, query, container)
    return spec


@dataclasses.dataclass(frozen=True)
class _Pin:
    query: dict[str, str]  # the pinned run's settings (and main-area controls), as in its link
    figures: dict[str, go.Figure]  # its final charts by name


def _pin_controls(page: str, query: dict[str, str], container) -> None:
    """Pin this run's charts; later settings draw them faded over theirs (or beside them), see chart()."""
    st.session_state[_SHOWING] = (page, query)
    st.session_state.setdefault(_DRAWN, {})[page] = {}  # this run's final draws fill it
    pinned = st.session_state.setdefault(_PINNED, {}).get(page)
    row = container.container(horizontal=True, gap="small")
    row.button(
        "Pin these charts",
        key=f"{page}.pin",
        on_click=_pin,
        args=(page,),
        icon=":material/push_pin:",
        help="Keep this run's charts: with other settings they are drawn faded over the new ones (or beside them)",
    )
    if pinned is not None:
        row.button("Unpin", key=f"{page}.unpin", on_click=st.session_state[_PINNED].pop, args=(page, None))
        container.caption(f"Pinned: {quote(compare.differences(pinned.query, query))}")


def _pin(page: str) -> None:
    figures = dict(st.session_state.get(_DRAWN, {}).get(page, {}))
    if figures:  # the query as the last run left it, main-area controls included (show_control)
        st.session_state[_PINNED][page] = _Pin(dict(st.session_state[_SHOWING][1]), figures)
    else:
        st.toast("Nothing to pin yet: pin once the run has finished.", icon=":material/hourglass_top:")


def _compared(fig: go.Figure, name: str) -> tuple[go.Figure, go.Figure | None, str]:
    """The figure to draw under `name` and, when it cannot be overlaid, the pinned one to draw beside it."""
    page, query = st.session_state.get(_SHOWING, (None, {}))
    if not getattr(_local, "live", False) and page in st.session_state.get(_DRAWN, {}):
        st.session_state[_DRAWN][page][name] = fig
    pin = st.session_state.get(_PINNED, {}).get(page)
    if pin is None or name not in pin.figures or pin.query == query:
        return fig, None, ""
    label = compare.differences(pin.query, query)
    if compare.can_overlay(fig) and compare.can_overlay(pin.figures[name]):
        return compare.overlay(fig, pin.figures[name], label), None, label
    return fig, pin.figures[name], label


def _shown_names(page: str) -> tuple[str, ...]:
    return views.BY_NAME[page].shown if page in views.BY_NAME else ()


def _shown_params(page: str, spec_query: dict[str, str]) -> dict[str, str]:
    """The main-area controls' URL values as last drawn in this session with these settings (show_control
    checks a link's first). Other settings start afresh: a control they do not draw (Alternatives' tensor norm
    outside its view) must leave the link, and the controls they draw put themselves back."""
    drawn_for, drawn = st.session_state.get(f"{page}.shown", (None, {}))
    if drawn_for != spec_query:
        st.session_state[f"{page}.shown"] = (spec_query, {})
        return {}
    return {n: drawn[n] for n in _shown_names(page) if n in drawn}


def show_control(page: str, name: str, widget: Callable, label: str, options, *, default, key: str | None = None, **kw):
    """A main-area control (what the charts show, not what trains): `widget` is a bound st.segmented_control,
    st.radio, st.selectbox or st.multiselect. Its value is the URL parameter `name` (listed in the view's
    `shown`), so a link reproduces the view; a value in a link that is not an option is named in a warning."""
    key, options = key or f"{page}.{name}", list(options)
    many = widget.__name__ in ("multiselect", "pills") and kw.get("selection_mode", "multi") == "multi"
    in_url = getattr(_local, "shown_in_url", {})  # spec_controls kept them before it rewrote the URL
    if key not in st.session_state and name in in_url:
        given, by_text = in_url[name], {str(o): o for o in options}
        words = (given[0].split(",") if given[0] else []) if many else given[:1]
        if len(given) > 1:
            st.warning(f"URL parameter {quote(name)} was given {len(given)} times; showing the default.")
        elif all(w in by_text for w in words) and len(set(words)) == len(words):
            st.session_state[key] = [by_text[w] for w in words] if many else by_text[words[0]]
        else:
            choices = ", ".join(quote(str(o)) for o in options)
            what = "a list of distinct values from" if many else "one of"
            st.warning(f"URL parameter {quote(name)}={quote(given[0])} is not {what} {choices}; showing the default.")
    kept = st.session_state.setdefault(_KEPT, {}).get(key, default)  # a view left and come back to
    if not (set(kept) <= set(options) if many else kept in options):
        kept = default
    current = st.session_state.get(key, kept)
    if widget.__name__ in ("segmented_control", "pills") and not many:
        kw.setdefault("required", True)  # a click on the chosen option must not leave None (and "None" in the URL)
    if widget.__name__ in ("radio", "selectbox"):
        kw["index"] = options.index(current) if current in options else 0
    else:
        kw["default"] = current
    value = widget(label, options, key=key, **kw)
    if value is None and not many:  # no option chosen (the browser's `required` forbids it)
        value = default
    st.session_state[_KEPT][key] = value
    text = ",".join(map(str, value)) if many else str(value)
    _, drawn = st.session_state.get(f"{page}.shown", (None, {}))  # spec_controls made it for this run's settings
    if drawn.get(name) != text or st.query_params.get(name) != text:
        drawn[name] = st.query_params[name] = text
        slot, query = getattr(_local, "link", (None, {}))
        if slot is not None:
            _local.link = (slot, query | {name: text})
            _link(*_local.link)
        if st.session_state.get(_SHOWING, (None,))[0] == page:  # what a pin records, and compares with
            st.session_state[_SHOWING] = (page, st.session_state[_SHOWING][1] | {name: text})
    return value


@dataclasses.dataclass(frozen=True)
class _Lesson:
    """In presenter mode, a tour stop whose notice is about one chart: drawn next to that chart."""

    view: str
    preset: str
    notice: str
    chart: str
    opened: int  # counts the times a page opened on a lesson: each opening scrolls to its chart once


def _lesson(view: str, preset: str, notice: str) -> _Lesson | None:
    """The lesson this run shows next to its chart (None off the tour, without a chart, or not presenting)."""
    stop = tour.stop(view, preset) if presenting() else None
    previous = st.session_state.get(_LESSON)
    if stop is None or not stop.chart:
        st.session_state[_LESSON] = None
        return None
    if previous is None or (previous.view, previous.preset) != (view, preset):  # a page opened on this lesson
        st.session_state[_LESSONS_OPENED] = st.session_state.get(_LESSONS_OPENED, 0) + 1
    opened = st.session_state[_LESSONS_OPENED]
    lesson = st.session_state[_LESSON] = _Lesson(view, preset, notice, stop.chart, opened)
    return lesson


@functools.cache
def _scroll_here():
    """A component that scrolls the page to itself once per lesson opening (its `data`)."""
    js = (Path(__file__).parent / "scroll_here.js").read_text()
    return st.components.v2.component("normviz_scroll_here", js=js, isolate_styles=False)


def _lesson_beside(name: str) -> None:
    """Before the chart `name`: the presenter's lesson notice, its Next lesson link, and the scroll to it."""
    lesson = st.session_state.get(_LESSON)
    if lesson is None or lesson.chart != name:
        return
    _scroll_here()(key="lesson-scroll", data=f"{lesson.view}/{lesson.preset}/{lesson.opened}", height=0)
    st.info(f"**{lesson.preset}.** {lesson.notice}", icon=":material/school:")
    _next_lesson(lesson.view, lesson.preset)


def _next_lesson(view: str, preset: str) -> None:
    """In presenter mode, on a stop of the guided tour: a button to the tour's next stop."""
    following = tour.next_stop(view, preset) if presenting() else None
    if following is not None:
        section, stop = following
        st.page_link(
            views.view(section.view).page,
            label=f"Next lesson: {stop.preset} ›",
            icon=":material/skip_next:",
            query_params={PRESET_PARAM: stop.preset, PRESENT_PARAM: "1"},
        )


def page_opened(path: str) -> None:
    """Call on every run with the page's URL path (app.py): a page change forgets the previous page's lesson,
    so that coming back to it scrolls to its chart again."""
    if st.session_state.get(_PAGE) != path:
        st.session_state[_PAGE], st.session_state[_LESSON] = path, None


def presenter_mode() -> bool:
    """Presenter mode, for a projector: chart fonts large enough for the back of a lecture hall, the sidebar
    collapsed when a page opens, and a "Next lesson" button on the tour's stops. A link with present=1 turns it
    on (present=0 off); the session keeps it across pages and every URL the app writes carries it. Draws the
    sidebar switch; call once per run, before the page (app.py)."""
    state, value = st.session_state, st.query_params.get(PRESENT_PARAM)
    if value in ("1", "0"):
        state[_PRESENT] = value == "1"
    elif value is not None:
        st.warning(f"URL parameter `present` must be 1 or 0, got {quote(value)}; ignored.", icon=":material/warning:")
        del st.query_params[PRESENT_PARAM]
    state.setdefault(_PRESENT, False)
    state[_PRESENT_SWITCH] = state[_PRESENT]

    def switch():
        state[_PRESENT] = state[_PRESENT_SWITCH]
        if PRESENT_PARAM in st.query_params or state[_PRESENT]:
            st.query_params[PRESENT_PARAM] = "1" if state[_PRESENT] else "0"

    st.sidebar.toggle(
        "Presenter mode (projector)",
        key=_PRESENT_SWITCH,
        on_change=switch,
        help="Large chart fonts and a Next lesson button on the tour's stops; kept across pages. "
        "A link with present=1 opens in it.",
    )
    return state[_PRESENT]


def presenting() -> bool:
    return bool(st.session_state.get(_PRESENT, False))


def set_controls(page: str, spec_cls, **values) -> None:
    """Set some of a page's settings from a callback (e.g. an edited table): its widgets show the values on
    the next run, and settings without a widget on the page change too."""
    info, hidden = spec_cls.field_info(), st.session_state.setdefault(f"{page}.hidden", {})
    for name, value in values.items():
        if name in hidden:
            hidden[name] = value
        else:
            st.session_state[f"{page}.{name}"] = _to_widget_value(info[name], value)


def edit_settings(page: str, spec: Spec, edit: Callable[..., Spec], *args) -> None:
    """A button's or a table's callback: the settings `edit(spec, *args)` returns become the page's, or a
    toast says why they cannot."""
    try:
        new = edit(spec, *args)
    except SpecError as exc:
        st.toast(f"Not applied: {exc}", icon=":material/warning:")
        return
    old = spec.to_dict()
    set_controls(page, type(spec), **{name: v for name, v in new.to_dict().items() if v != old[name]})


def settings_table(page: str, spec: Spec, frame: pd.DataFrame, table: str, edit: Callable[..., Spec]) -> None:
    """An editable table of some of the page's settings; `edit(spec, table, edited_rows)` applies its edits. Its
    key follows the settings, so new settings (another batch, a preset) start a fresh editor."""
    key = f"{page}.{table}-editor-{zlib.crc32(spec.to_json().encode())}"
    st.data_editor(
        frame.astype(float),
        key=key,
        height="content",
        on_change=lambda: edit_settings(page, spec, edit, table, st.session_state[key]["edited_rows"]),
    )


def _data_file_select(key: str, label: str, help_: str, container) -> str:
    """A file of the server's data folder, by name: the folder's listing is the only choice there is."""
    files = data.data_files()
    if st.session_state.get(key, "") not in files:
        if st.session_state.get(key):  # e.g. a link naming a file this server does not have
            st.warning(f"{data.not_a_data_file(st.session_state[key])}; using none.", icon=":material/warning:")
        st.session_state[key] = ""
    return container.selectbox(
        label,
        [""] + files,
        index=_index([""] + files, st.session_state[key]),
        key=key,
        help=help_ if files else help_ + "; this server has none",
        format_func=lambda name: name or "(none)",
    )


def data_upload(page: str, container=None) -> str | None:
    """An upload control for the user's own data: a CSV (features, then the label) or an .npz (x/y or
    x_train/y_train[/x_test/y_test]). Returns the checked data's key ("sha256:..."), "" with no file, or None
    when the file was rejected (the reason shown). The data stays in this session: its session state holds
    it, and the runs find it by the key while the session does."""
    container = container or st.sidebar
    held = f"{page}.upload-data"  # (file id, data.Upload or why not): checked once per file, not every rerun
    dataset_key = f"{page}.dataset"

    def switch_to_upload():  # a new file is what the user wants to train on
        if st.session_state.get(f"{page}.upload-file") is not None and dataset_key in st.session_state:
            st.session_state[dataset_key] = "upload"

    limit_mb = st.get_option("server.maxUploadSize")
    file = container.file_uploader(
        "Your data (CSV or .npz)",
        type=["csv", "npz"],
        key=f"{page}.upload-file",
        on_change=switch_to_upload,
        help=f"Up to {limit_mb} MB. CSV: one sample per row, the features, then an integer label (one header row "
        "allowed). .npz: arrays x and y, or x_train, y_train (and x_test, y_test). Only this session sees it.",
    )
    if file is None:
        st.session_state.pop(held, None)
        return ""
    current = st.session_state.get(held)
    if current is None or current[0] != file.file_id:
        try:
            checked = data.read_upload(file.name, file.getvalue(), limit_mb * 2**20)
        except DataError as exc:
            checked = str(exc)
        st.session_state[held] = current = (file.file_id, checked)
    if isinstance(current[1], str):
        st.error(f"Your file cannot be used: {current[1]}", icon=":material/block:")
        return None
    return current[1].key


def settingless_page() -> None:
    """A page without settings (home): each URL parameter is named in a warning and dropped (but `present`)."""
    keys = [k for k in st.query_params if k != PRESENT_PARAM]
    for key in keys:
        st.warning(unknown_parameter(key, ": this page has no settings"), icon=":material/warning:")
        del st.query_params[key]


def _link(slot, query: dict):
    base = public_url(st.context.url)
    if base:
        container = slot.container()
        container.caption("Link to this view (copy button on the right):")
        container.code(f"{base}?{urlencode(query)}", language=None, wrap_lines=True)
        with container.popover("QR code", icon=":material/qr_code_2:"):
            try:
                st.image(qr_png(f"{base}?{urlencode(query)}"), caption="This view, for phones")
            except segno.DataOverflowError:  # a QR code holds at most about 2,900 characters
                st.caption("This link is too long for a QR code; share it as text.")


def public_url(url: str | None) -> str | None:
    """The page's URL as the class should open it: NORMVIZ_PUBLIC_URL (e.g. https://class.example.org, the
    reverse proxy's address) in place of the scheme and host the teacher's browser used (often localhost)."""
    public = _public_base()
    if not url or not public or public_url_problem() is not None:
        return url  # unset, or not an address: the home page's share box says so
    return public + urlsplit(url).path


def public_url_problem() -> str | None:
    """What is wrong with NORMVIZ_PUBLIC_URL, or None."""
    public = _public_base()
    parts = urlsplit(public)
    if public and (parts.scheme not in ("http", "https") or not parts.netloc):
        return f"NORMVIZ_PUBLIC_URL must be an http(s) address such as https://class.example.org, got {quote(public)}"
    return None


def _public_base() -> str:
    return os.environ.get("NORMVIZ_PUBLIC_URL", "").strip().rstrip("/")


@functools.lru_cache(maxsize=64)
def qr_png(text: str) -> bytes:
    """A QR code of `text` as PNG (segno, pure Python)."""

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=8, border=2)
    return buffer.getvalue()


def share(url: str | None, what: str = "this app") -> None:
    """A link and its QR code, for a class to open on their own devices."""
    base = public_url(url)
    if not base:
        return
    link, code = st.columns([3, 1], vertical_alignment="center")
    link.markdown(f"Students open {what} at:")
    link.code(base, language=None, wrap_lines=True)
    if problem := public_url_problem():
        link.warning(problem, icon=":material/warning:")
    elif not _public_base():
        link.caption("This is the address your browser used; set NORMVIZ_PUBLIC_URL to the one students can reach.")
    code.image(qr_png(base), width=180)


def reproduce(code: str):
    """The "Reproduce in PyTorch" expander: a short runnable snippet generated from the settings."""
    with st.expander("Reproduce in PyTorch"):
        st.code(code, language="python")


def font_size() -> int:
    """Chart font size: projector-sized in presenter mode."""
    return FONT_SIZES["large" if presenting() else "normal"]


def chart(fig: go.Figure, name: str):
    """Draw a figure with HTML and PNG downloads. Its key is `name` on every frame of a live run; a live
    frame updates the chart in place and has no downloads (the figure is replaced a moment later)."""
    _lesson_beside(name)
    fig, beside, label = _compared(fig, name)
    if beside is not None:  # a chart kind that does not read overlaid: the pinned run's chart next to it
        current, pinned = st.columns(2)
        pinned.caption(f"Pinned run ({quote(label)})")
        _plotly(pinned, beside, f"{name}.pinned")
        with current:
            _draw(fig, name)
        return
    _draw(fig, name)


_TEXT_ICONS = {"success": ":material/insights:", "info": ":material/lightbulb:"}


def draw(panels: list[Panel]) -> None:
    """A view's panels, in order: charts with their title, caption and notice; tables; texts."""
    for panel in panels:
        if isinstance(panel, Chart):
            if panel.title:
                st.subheader(panel.title)
            chart(panel.figure, panel.key)
            if panel.caption:
                st.caption(panel.caption)
            if panel.notice:
                st.markdown("**What to notice**\n" + panel.notice)
        elif isinstance(panel, Worked):
            _worked(panel)
        elif isinstance(panel, Table):
            percent = {c: st.column_config.NumberColumn(format="percent") for c in panel.percent}
            st.dataframe(panel.rows, hide_index=True, column_config=percent or None)
            if panel.download:
                table_download(panel.rows, panel.download)
        elif panel.kind == "expander":
            with st.expander(panel.title):
                st.markdown(panel.body)
        elif panel.kind == "code":
            st.code(panel.body, language=None, wrap_lines=True)
        elif panel.kind in _TEXT_ICONS:
            getattr(st, panel.kind)(panel.body, icon=_TEXT_ICONS[panel.kind])
        else:  # markdown, caption, subheader, error, warning
            getattr(st, panel.kind)(panel.body)


def _worked(step: Worked) -> None:
    st.markdown(f"**{step.title}**")
    left, right = st.columns([1, 1], gap="large") if step.side_by_side else (st.container(), st.container())
    for line in step.formula + step.worked:
        left.latex(line)
    for label, table in step.tables:
        if label:
            right.markdown(label)
        right.dataframe(table.style.format("{:.4g}"), height="content")
    right.caption(step.caption)


def chosen_experiment(spec: Spec) -> None:
    """A page of several experiments (a ViewsSpec): the chosen one's title, then a line that names them all and
    the settings the chosen one reads."""
    info = type(spec).field_info()["view"]
    titles, label = info["choice_labels"], info["label"]
    st.header(titles[spec.view], divider="gray")
    names = " · ".join(f"**{t}**" if v == spec.view else t for v, t in titles.items())
    st.caption(
        f"{len(titles)} {label.lower()}s (sidebar → {label}): {names}. "
        f"Settings this one uses: {type(spec).used_labels(spec.view)}."
    )


def show_view(name: str, spec: Spec, **shown) -> None:
    """Every run behind the view at these settings, each drawn as its lesson's panels, live while it trains;
    `shown`: the values of the view's main-area controls."""
    view, font = views.view(name), font_size()
    for part in view.parts(spec):

        def render(result, final: bool, part=part):
            draw(view.panels(part, result, final, font, **shown))

        show_run(part.spec, part.run, render, label=part.label)


def _draw(fig: go.Figure, name: str) -> None:
    if getattr(_local, "live", False):
        _live_plotly(fig, name)
        return
    _plotly(st, fig, name)
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


def table_csv(table, index: bool = False) -> str:
    """A results table as CSV, six significant digits (float32's 0.1 is 0.1, not 0.10000000149)."""
    return pd.DataFrame(table).to_csv(index=index, float_format="%.6g")


def table_download(table, name: str, index: bool = False):
    """A CSV download of a results table (a DataFrame or rows of dicts; made when clicked); nothing during
    live frames."""
    if getattr(_local, "live", False):
        return
    st.download_button(
        "CSV",
        functools.partial(table_csv, table, index),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"{name}.csv",
        on_click="ignore",
        type="tertiary",
        icon=":material/download:",
        help="This table as CSV",
    )


def _plotly(container, fig: go.Figure, name: str):
    container.plotly_chart(fig, key=name, config={"displaylogo": False, "toImageButtonOptions": {"filename": name}})


@functools.cache
def _live_chart():
    """st.plotly_chart gives a chart a new element whenever its figure changes (Streamlit 1.67), which the
    browser remounts blank; this component keeps one element per key and updates its Plotly in place."""
    js = (Path(__file__).parent / "live_chart.js").read_text()
    return st.components.v2.component("normviz_live_chart", js=js, isolate_styles=False)


def _live_plotly(fig: go.Figure, name: str):
    figure = fig.to_json()  # the figure may be a memoized one: the browser themes its copy
    data = {"figure": figure, "config": {"displayModeBar": False}}
    _live_chart()(key=f"live.{name}", data=data, height=int(fig.layout.height or 450))


def serve_plotly_js(app_dir: Path) -> None:
    """Put the plotly package's own plotly.min.js in <app>/static (the only file there) for the live charts."""
    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = app_dir / "static" / "plotly.min.js"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)


@functools.cache
def _chromium() -> str | None:
    return export.chromium_path()


def _session_id() -> str | None:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def show_run(
    spec: Spec, run: Callable[[Spec], Iterator], render: Callable[[object, bool], None], label: str = "Training"
):
    """Render a run's result; while it trains in the run service, redraw it about four times a second.
    render(result, final) draws the charts. Returns the final result, or None while the run is not done.

    A finished result draws at once. Otherwise the run is submitted (after the browser's cost cap) and a
    fragment on a timer follows it: the queue notice, then the partial results, and a full rerun once it is
    done (downloads and animations come with the final draw). The page script never waits for training.
    """
    service = default_service()
    key = spec.key()
    final = service.result(key)
    replaying = final is not None and _playback(label, key) is not None and service.tape(key)
    if final is not None and not replaying:
        _frame(render, final, True, controls=lambda: _replay_button(label, key))
        return final
    if replaying:
        st.fragment(_follow, run_every=LIVE_FRAME_S)(None, render, label, None, key)
        return None
    failed = st.session_state.setdefault(_FAILED, {})
    handles = st.session_state.setdefault(_HANDLES, {})
    previous = handles.get(label)
    if previous is not None and previous.key == key and previous.status().state == "failed":  # before a frame saw it
        failed[key] = previous.status().error or "The run stopped with an error."
        del handles[label]
    if key in failed:
        with st.container():
            st.error(failed[key], icon=":material/error:")
            st.button("Retry", key=f"retry.{label}", on_click=failed.pop, args=(key, None), icon=":material/replay:")
        return None
    try:
        cost.check_browser(spec)
        session = _session_id()
        # a page's runs each follow on their own (Train vs inference has two); another page's first run
        # replaces this page's under the same label
        follower = None if session is None else f"{session}/{label}"
        handle = handles[label] = service.submit(spec, run, follower=follower)
    except (cost.CostError, QueueFull) as exc:
        st.error(str(exc), icon=":material/block:")
        return None
    interval = st.session_state.get(_INTERVALS, {}).get(label, LIVE_FRAME_S)
    st.fragment(_follow, run_every=interval)(handle, render, label, follower, key)
    return None


def _follow(handle, render, label: str, follower: str | None, key: str):
    """One live frame, run by a fragment on a timer: the run's newest frame, or the session's place on its
    tape (paused, slowed, replayed). handle=None replays a finished run. Reading the handle tells the service
    that the tab is open."""
    status = handle.status() if handle is not None else None
    if status is not None and status.state == "failed":
        st.session_state.setdefault(_FAILED, {})[key] = status.error or "The run stopped with an error."
    place = _playback(label, key)
    if status is not None and (
        status.state in ("failed", "cancelled")  # cancelled: e.g. the server was too busy to say so
        or (status.state == "done" and (place is None or place.shown is None))
    ):
        _keep_alive(follower, None)
        st.rerun(scope="app")  # the page draws the final result, the error and Retry, or submits again
    _keep_alive(follower, _session_id())
    if status is not None and status.state == "queued":  # every worker is busy: yours starts after the ones ahead
        ahead = status.ahead + 1
        text = f"{ahead} run{'s' if ahead != 1 else ''} ahead of yours, about {status.eta_seconds:.0f} s"
        st.info(text, icon=":material/hourglass_top:")
        return
    tape, started = default_service().tape(key), time.monotonic()
    if not tape:
        if status is None:  # the tape expired during a replay
            _playback_states().pop(label, None)
            st.rerun(scope="app")
        st.progress(0.0, text=f"{label}… starting")
        return
    frame = place.tick(tape) if place is not None else tape[-1]
    if place is not None and place.playing and place.at_end(tape):
        if status is None or status.state == "done":  # played to the final result: drawn with its downloads
            _playback_states().pop(label, None)
            st.rerun(scope="app")
        if place.speed == 1.0:  # caught up with the run: follow its newest frame again
            place.shown = None
    progress = min(max(frame.progress, 0.0), 1.0)
    _frame(render, frame, False, _frame_text(label, progress, place), progress, lambda: _player(label, key))
    # a session's frames may take at most a quarter of the server's time: a slow frame (large figures, a busy
    # machine) lengthens this session's timer, which only a full rerun can set
    intervals = st.session_state.setdefault(_INTERVALS, {})
    now, wanted = intervals.get(label, LIVE_FRAME_S), _frame_interval(time.monotonic() - started)
    if wanted > 2 * now or wanted < now / 2:
        intervals[label] = wanted
        st.rerun(scope="app")


def _playback_states() -> dict[str, playback.Playback]:
    return st.session_state.setdefault(_PLAYBACK, {})


def _playback(label: str, key: str) -> playback.Playback | None:
    """This session's place on the tape of the run shown under `label`, if it has taken one."""
    place = _playback_states().get(label)
    return place if place is not None and place.key == key else None


def _frame_text(label: str, progress: float, place: playback.Playback | None) -> str:
    if place is None or place.shown is None:
        return f"{label}… {progress:.0%}"
    speed = playback.speed_name(place.speed)
    return f"{label}: {progress:.0%} of the run, {'playing at ' + speed if place.playing else 'paused'}"


def _act(label: str, key: str, action: str, *args) -> None:
    """A player button's callback: move this session's place on the run's tape."""
    tape = default_service().tape(key)
    if not tape:
        return
    place = _playback(label, key)
    if place is None:
        place = _playback_states()[label] = playback.Playback(key)
    getattr(place, action)(*args, tape)


def _set_speed(label: str, key: str) -> None:
    chosen = st.session_state.get(f"speed.{label}")
    _act(label, key, "set_speed", playback.SPEEDS.get(chosen, 1.0))


def _player(label: str, key: str) -> None:
    """Pause / play, one step, restart from step 0, and the speed: over the frames the run has recorded."""
    place = _playback(label, key)
    paused = place is not None and not place.playing
    row = st.container(horizontal=True, gap="small", vertical_alignment="center")
    buttons = [
        ("Play", "play", ":material/play_arrow:", None) if paused else ("Pause", "pause", ":material/pause:", None),
        ("Step", "step", ":material/skip_next:", "Pause, then show the next chunk of steps"),
        (
            "Restart",
            "restart",
            ":material/replay:",
            "Play the run again from step 0 (the same seed gives the same frames, so nothing trains again)",
        ),
    ]
    for text, action, icon, help_ in buttons:
        row.button(text, key=f"{action}.{label}", on_click=_act, args=(label, key, action), icon=icon, help=help_)
    speed = playback.speed_name(place.speed if place else 1.0)
    st.session_state[f"speed.{label}"] = speed
    row.segmented_control(
        "Speed",
        list(playback.SPEEDS),
        key=f"speed.{label}",
        on_change=_set_speed,
        args=(label, key),
        label_visibility="collapsed",
        help="Slow the frames down, so that a class can watch them change",
    )


def _replay_button(label: str, key: str) -> None:
    """Under a finished run this server trained recently: play its training again from step 0."""
    if len(default_service().tape(key)) > 1:
        st.button(
            "Replay the training",
            key=f"replay.{label}",
            on_click=_act,
            args=(label, key, "restart"),
            icon=":material/replay:",
            type="tertiary",
            help="Its frames, from step 0, with pause, step and a slower speed",
        )


def _frame_interval(frame_seconds: float) -> float:
    return min(max(LIVE_FRAME_S, 4 * frame_seconds), MAX_FRAME_S)


_KEEP_ALIVE_S = 0.3  # how often the open tabs' runs are confirmed to the service
_QUIET_PAGE_S = 15  # a page that drew no live frame for this long (its tab moved to a page without runs) lets go
_followed: dict[str, tuple[str, float]] = {}  # follower -> (its session, when its page last drew a live frame)
_followed_lock = threading.Lock()


def _keep_alive(follower: str | None, session: str | None) -> None:
    """Tell the service that `follower` (its tab open) still follows its run, every 0.3 s from a thread, until
    its page stops drawing live frames or its browser session disconnects (the tab closed). On a busy server
    one frame can take longer to draw than the service waits for a heartbeat (3-5 s between frames at a load average
    of 9 on 2 cores, against 1.2 s): heartbeats from the frames alone made such runs restart forever."""
    if follower is None:
        return
    with _followed_lock:
        if session is None:
            _followed.pop(follower, None)
        else:
            _followed[follower] = (session, time.monotonic())
    _start_keep_alive()


@functools.cache
def _start_keep_alive() -> None:
    threading.Thread(target=_confirm_followers, name="normviz-keep-alive", daemon=True).start()


def _confirm_followers() -> None:
    from streamlit.runtime import Runtime

    while True:
        time.sleep(_KEEP_ALIVE_S)
        if not Runtime.exists():  # AppTest: the frames themselves are the heartbeats
            continue
        runtime, now = Runtime.instance(), time.monotonic()
        with _followed_lock:
            gone = [
                follower
                for follower, (session, drawn) in _followed.items()
                if now - drawn > _QUIET_PAGE_S or not runtime.is_active_session(session)
            ]
            for follower in gone:
                _followed.pop(follower, None)
            alive = list(_followed)
        for follower in alive:
            default_service().heartbeat(follower)


def _frame(render, result, final: bool, text: str = "", progress: float = 0.0, controls=None):
    """Draw a result in the same element tree on every frame: the player's buttons and the progress line
    (empty in the final draw), then the charts. Each chart keeps its place and key, and a live frame's charts
    are updated in place (_live_plotly)."""
    with st.container():
        with st.container():
            if controls is not None:
                controls()
        if text:
            st.progress(progress, text=text)
        else:
            st.empty()
        with st.container():
            _local.live = not final
            try:
                render(result, final)
            finally:
                _local.live = False
