"""The lessons as one offline HTML file, for slides or for students without the app.

    python -m normviz report --out report.html                      # every preset of every page
    python -m normviz report --preset "He init + ReLU" --out he.html  # only the named ones

Presets come in the order of the guided tour (normviz.lessons.tour). Each is trained headless (the same
run(spec) as the pages) and drawn with its page's figures; plotly.js is embedded once, so the file
works without a network.
"""

from __future__ import annotations

import html
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from tqdm import tqdm

from normviz import views
from normviz.config import Preset, Spec
from normviz.figures.export import EXPORT_TEMPLATE
from normviz.figures.style import FONT_SIZES
from normviz.lessons.tour import TOUR
from normviz.panels import Chart


@dataclass(frozen=True)
class ReportPage:
    title: str
    view: views.View

    @property
    def presets(self) -> dict[str, Preset]:
        return self.view.presets

    @property
    def spec_cls(self) -> type[Spec]:
        return self.view.spec_cls


@dataclass(frozen=True)
class Lesson:
    page: ReportPage
    name: str
    preset: Preset

    @property
    def spec(self) -> Spec:
        return self.preset.spec(self.page.spec_cls)


def pages() -> list[ReportPage]:
    """The views of the tour, in its order."""
    return [ReportPage(s.title, views.view(s.view)) for s in TOUR]


def lessons(names: list[str] | None = None) -> list[Lesson]:
    """Every preset (tour stops first on each page), or the named ones; an unknown name raises KeyError."""
    found = []
    for page in pages():
        section = next(s for s in TOUR if s.title == page.title)
        order = [s.preset for s in section.stops if s.preset in page.presets]
        order += [n for n in page.presets if n not in order]
        found += [Lesson(page, n, page.presets[n]) for n in order]
    if names is None:
        return found
    unknown = [n for n in names if n not in {lesson.name for lesson in found}]
    if unknown:
        raise KeyError(f"no preset named {', '.join(map(repr, unknown))}; see --list")
    return [lesson for lesson in found if lesson.name in names]


def _markdown(text: str) -> str:
    """The little markdown presets use (**bold**, *italic*, `code`) as HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _settings(spec: Spec) -> str:
    default = type(spec)().to_query()
    changed = {k: v for k, v in spec.to_query().items() if v != default[k]}
    return ", ".join(f"{k} = {v}" for k, v in changed.items()) or "the page's defaults"


def _train(parts: list[views.Part], bar: tqdm, start: float) -> list:
    """Runs each part to its end, moving the bar by the lesson's progress (one unit per lesson)."""

    def moved(done: float) -> None:
        bar.n = round(start + done, 3)
        bar.refresh()

    return views.train(parts, moved)


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1250px; margin: 0 auto; padding: 1rem 2rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ccc; }
.notice { background: #eef5fc; border-left: 4px solid #1f77b4; padding: .6rem 1rem; font-size: 1.1rem; }
.settings, .meta { color: #555; font-size: .9rem; } .error { color: #b00020; }
"""


def render_html(sections: list[tuple[Lesson, list[go.Figure] | str]], command: str) -> str:
    """One HTML page: a table of contents, then per lesson its title, notice, settings and figures."""
    out, toc = [], []
    fig_no = 0
    for i, (lesson, figures) in enumerate(sections):
        anchor = f"lesson-{i + 1}"
        toc.append(f'<li><a href="#{anchor}">{html.escape(lesson.page.title)}: {html.escape(lesson.name)}</a></li>')
        out.append(f'<section id="{anchor}"><h2>{html.escape(lesson.page.title)}: {html.escape(lesson.name)}</h2>')
        out.append(f'<p class="notice">{_markdown(lesson.preset.notice)}</p>')
        out.append(f'<p class="settings">Settings: {html.escape(_settings(lesson.spec))}.</p>')
        if isinstance(figures, str):
            out.append(f'<p class="error">This lesson could not be drawn: {html.escape(figures)}</p>')
        else:
            for fig in figures:
                fig_no += 1
                fig = go.Figure(fig).update_layout(template=EXPORT_TEMPLATE)
                out.append(
                    fig.to_html(
                        full_html=False,
                        include_plotlyjs=False,
                        div_id=f"figure-{fig_no}",
                        config={"displaylogo": False},
                        default_width="100%",
                        auto_play=False,
                    )
                )
        out.append("</section>")
    return "\n".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>normviz: BatchNorm lessons</title>",
            f"<style>{CSS}</style>",
            f'<script type="text/javascript">{get_plotlyjs()}</script>',
            "</head><body>",
            "<h1>BatchNorm, lesson by lesson</h1>",
            f'<p class="meta">Made by <code>{html.escape(command)}</code> on {time.strftime("%Y-%m-%d %H:%M")}. '
            "Every chart is interactive (hover, zoom, play) and this file works offline.</p>",
            f"<ol>{''.join(toc)}</ol>",
            *out,
            "</body></html>",
        ]
    )


def build(
    names: list[str] | None = None,
    out: str | Path = "report.html",
    font_size: int = FONT_SIZES["normal"],
    command: str = "python -m normviz report",
    progress: bool | None = None,
) -> tuple[Path, int]:
    """Train every chosen lesson, write the HTML; returns (path, number of lessons that failed)."""
    chosen = lessons(names)
    sections, failed, done = [], 0, {}
    with tqdm(
        total=len(chosen),
        desc="lessons",
        unit="lesson",
        disable=None if progress is None else not progress,
        bar_format="{l_bar}{bar}| {n:.1f}/{total} lessons [{elapsed}<{remaining}]",
    ) as bar:
        for i, lesson in enumerate(chosen):
            bar.set_description(lesson.name[:40])
            try:
                view = lesson.page.view
                parts = view.parts(lesson.spec)
                key = tuple(p.spec.key() for p in parts)
                results = done.get(key) or _train(parts, bar, i)
                done[key] = results
                panels = [p for part, r in zip(parts, results) for p in view.panels(part, r, True, font_size)]
                figures = [p.figure for p in panels if isinstance(p, Chart)]
            except Exception as exc:  # one broken lesson must not cost the whole report
                figures, failed = f"{type(exc).__name__}: {exc}", failed + 1
            sections.append((lesson, figures))
            bar.n = i + 1
            bar.refresh()
    path = Path(out)
    path.write_text(render_html(sections, command), encoding="utf-8")
    return path, failed


def add_arguments(parser) -> None:
    parser.add_argument(
        "--preset",
        action="append",
        metavar="NAME",
        dest="presets",
        help="a preset to include (repeat for several; default: every preset of every page)",
    )
    parser.add_argument("--out", default="report.html", metavar="PATH", help="the HTML file to write")
    parser.add_argument("--large-fonts", action="store_true", help="projector-sized chart fonts")
    parser.add_argument("--list", action="store_true", help="list the presets, page by page, and exit")


def main(args) -> int:
    """The `report` subcommand; returns the exit code."""
    from normviz.runtime import configure_torch

    if args.list:
        for lesson in lessons():
            print(f"{lesson.page.title}: {lesson.name}")
        return 0
    try:
        lessons(args.presets)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    configure_torch()
    command = "python -m normviz report" + "".join(f' --preset "{n}"' for n in args.presets or [])
    try:
        path, failed = build(args.presets, args.out, FONT_SIZES["large" if args.large_fonts else "normal"], command)
    except OSError as exc:
        print(f"error: cannot write the report: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)" + (f"; {failed} lesson(s) failed" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0
