"""The lessons as one offline HTML file, for slides or for students without the app.

    python -m normviz report --out report.html                      # every preset of every page
    python -m normviz report --preset "He init + ReLU" --out he.html  # only the named ones

Presets come in the order of the guided tour (normviz.tour). Each is trained headless (the same
run(spec) as the pages) and drawn with its page's figures; plotly.js is embedded once, so the file
works without a network.
"""

from __future__ import annotations

import html
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from tqdm import tqdm

from normviz import views
from normviz.config import Preset, Spec
from normviz.figures.export import EXPORT_TEMPLATE
from normviz.figures.style import FONT_SIZES, style
from normviz.tour import TOUR


@dataclass(frozen=True)
class Part:
    """One run behind a page and the figures drawn from its result."""

    run: Callable[[Spec], Iterator]
    spec: Spec
    figures: Callable[[object, int], list[go.Figure]]


@dataclass(frozen=True)
class ReportPage:
    title: str
    presets: dict[str, Preset]
    spec_cls: type
    parts: Callable[[Spec], list[Part]]  # the page's spec -> what to run and draw


@dataclass(frozen=True)
class Lesson:
    page: ReportPage
    name: str
    preset: Preset

    @property
    def spec(self) -> Spec:
        return self.preset.spec(self.page.spec_cls)


def _activations_parts(spec) -> list[Part]:
    from normviz.experiments import activations
    from normviz.figures import activations as f

    def draw(r, font):  # histograms (animated), curves, per-layer statistics
        return [f.layer_histograms(r, "act", font, animate=True), f.training_curves(r, font), f.layer_stats(r, font)]

    return [Part(activations.run, spec, draw)]


def _init_sweep_parts(spec) -> list[Part]:
    from normviz.experiments import init_sweep
    from normviz.figures.activations import init_sweep_grid

    return [Part(init_sweep.run, spec, lambda r, font: [init_sweep_grid(r, font)])]


def _running_stats_parts(spec) -> list[Part]:
    from normviz.experiments import running_stats
    from normviz.figures import running_stats as f

    def draw(r, font):
        layer = min(1, r.spec.depth - 1)  # layer 1's input mean is 0: the page starts at layer 2 too
        figs = [f.trajectories(r, layer, 0, None, font), f.errors(r, "precise", None, font), f.accuracy(r, None, font)]
        return figs + ([f.precise_bn(r, None, font)] if r.precise is not None else [])

    return [Part(running_stats.run, spec, draw)]


def _by_hand_parts(spec) -> list[Part]:
    from normviz.experiments import by_hand

    def draw(r, font):  # the page's tables: the batch, its statistics, x̂, y and the running statistics after
        h, (b, c) = r.hand, r.shape
        rows = (
            [(f"x, sample {i + 1}", r.inputs["x"][i]) for i in range(b)]
            + [("μ_B", h["mean"]), ("σ²_B", h["var"])]
            + [(f"x̂, sample {i + 1}", h["x_hat"][i]) for i in range(b)]
            + [(f"y = γx̂+β, sample {i + 1}", h["y"][i]) for i in range(b)]
            + [("running mean after", h["running_mean"]), ("running var after", h["running_var"])]
        )
        cells = [[label for label, _ in rows]] + [[f"{v[j]:.6g}" for _, v in rows] for j in range(c)]
        fig = go.Figure(
            go.Table(
                header=dict(values=["", *(f"feature {j + 1}" for j in range(c))]),
                cells=dict(values=cells, height=font + 12),
                columnwidth=[2] + [1] * c,
            )
        )
        note = (
            "torch.nn.BatchNorm1d refused this batch: " + r.torch_error
            if r.torch_error
            else f"max |by hand − nn.BatchNorm1d| (float64): {max(r.diff(n) for n in ('y', 'running_mean')):.1e}"
        )
        fig = style(fig, f"One training step by hand (momentum {r.momentum:g}, PyTorch convention). {note}", font)
        margins = fig.layout.margin.t + fig.layout.margin.b  # the title's lines, however many
        return [fig.update_layout(height=margins + (font + 12) * (len(rows) + 1) + 30)]

    return [Part(by_hand.run, spec, draw)]


def _train_vs_inference_parts(spec) -> list[Part]:
    from normviz.experiments import batch_size, inference
    from normviz.figures import train_vs_inference as f

    b = spec.batch_size  # the page's "B": it is not part of either experiment's own spec

    def draw_inference(r, font):
        if r.mlp is None:
            return []
        figs = [f.train_vs_eval(r, b, font), f.single_image(r, font)]
        if r.story is not None:
            figs += [f.story(r, font), f.batch_mates(r, b, font)]
        return figs + ([f.finetune(r, font)] if r.finetune is not None else [])

    def draw_sweep(r, font):
        return [f.sweep(r, b, font)] + ([f.stream(r, font)] if r.done else [])

    return [
        Part(inference.run, spec.project(inference.InferenceSpec), draw_inference),
        Part(batch_size.run, spec.project(batch_size.BatchSizeSpec), draw_sweep),
    ]


def _alternatives_parts(spec) -> list[Part]:
    from normviz.experiments import alternatives
    from normviz.figures import alternatives as f

    draw = {
        "axes": lambda r, font: [f.axes_cube(r, font), f.tensor_sets(r, "group", font)],
        "every-norm": lambda r, font: [f.zoo_curves(r, font)],
        "cost": lambda r, font: [f.cost_bars(r, font)],
        "sync-bn": lambda r, font: [f.sync_figure(r, font)],
        "rnn": lambda r, font: [f.rnn_curves(r, font), f.rnn_bn_stats(r, font), f.rnn_long(r, font)],
    }
    return [Part(alternatives.VIEW_RUNS[spec.view], spec.sub(), draw[spec.view])]


def _why_bn_parts(spec) -> list[Part]:
    from normviz.experiments import why_bn
    from normviz.figures import why_bn as f

    draw = {
        "lr-range": lambda r, font: [f.lr_range(r, font)],
        "landscape": lambda r, font: [f.landscape(r, font)],
        "noisy": lambda r, font: [
            f.noisy_distributions(r, f.default_layer(r.spec.depth), font),
            f.noisy_summary(r, font),
        ],
        "scale": lambda r, font: [f.scale(r, font)],
        "adabn": lambda r, font: [f.adabn(r, font)],
    }
    return [Part(why_bn.VIEW_RUNS[spec.view], spec.sub(), draw[spec.view])]


# each view's runs and the figures drawn from them: the same runs as its page
PARTS: dict[str, Callable[[Spec], list[Part]]] = {
    "activations": _activations_parts,
    "init_sweep": _init_sweep_parts,
    "by_hand": _by_hand_parts,
    "running_stats": _running_stats_parts,
    "train_vs_inference": _train_vs_inference_parts,
    "alternatives": _alternatives_parts,
    "why_bn": _why_bn_parts,
}


def pages() -> list[ReportPage]:
    """The views of the tour, in its order."""
    return [ReportPage(s.title, views.view(s.view).presets, views.view(s.view).spec_cls, PARTS[s.view]) for s in TOUR]


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


def _train(parts: list[Part], bar: tqdm, start: float) -> list:
    """Runs each part to its end, moving the bar by the lesson's progress (one unit per lesson)."""
    results = []
    for i, part in enumerate(parts):
        result = None
        for result in part.run(part.spec):
            bar.n = round(start + (i + min(result.progress, 1.0)) / len(parts), 3)
            bar.refresh()
        results.append(result)
    return results


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
                parts = lesson.page.parts(lesson.spec)
                key = tuple(p.spec.key() for p in parts)
                results = done.get(key) or _train(parts, bar, i)
                done[key] = results
                figures = [fig for part, result in zip(parts, results) for fig in part.figures(result, font_size)]
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
