"""`python -m normviz report`: one self-contained HTML file with every chosen lesson's figures."""

import re

import pytest
import torch

from normviz import cli, report, views
from normviz.lessons import activations
from normviz.lessons.tour import TOUR

torch.set_num_threads(1)
PRESET = "He init + ReLU"  # the fastest lesson (about 2 s)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "lesson.html"
    assert cli.main(["report", "--preset", PRESET, "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_report_has_every_figure_and_the_lesson_text(built):
    n_figures = 3  # the Activations page: histograms, curves, per-layer statistics
    assert built.count("Plotly.newPlot(") == n_figures
    assert len(set(re.findall(r'id="(figure-\d+)"', built))) == n_figures
    assert PRESET in built and "He init draws each layer" in built  # title and notice
    assert "Settings: init = he." in built


def test_report_works_offline(built):
    assert built.count("plotly.js v") == 1  # the library is embedded once, not per figure
    assert not re.search(r"<script[^>]+src=", built)  # nothing is fetched
    assert not re.search(r"<link[^>]+href=", built)


def test_unknown_preset_exits_2(tmp_path, capsys):
    assert cli.main(["report", "--preset", "no such lesson", "--out", str(tmp_path / "x.html")]) == 2
    assert "no preset named 'no such lesson'" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_every_tour_stop_is_a_preset_of_its_view():
    for section in TOUR:
        missing = [s.preset for s in section.stops if s.preset not in views.view(section.view).presets]
        assert not missing, f"{section.view}: {missing}"


def test_lessons_follow_the_tour_and_include_every_preset():
    assert [page.title for page in report.pages()] == [section.title for section in TOUR]  # every page has a report
    names = [lesson.name for lesson in report.lessons()]
    assert names[:3] == [s.preset for s in TOUR[0].stops]
    assert set(activations.PRESETS) <= set(names)
    assert len(names) == len(set(names))


def test_the_by_hand_table_has_room_for_its_wrapped_title_and_every_row():
    from normviz.experiments.by_hand import ByHandSpec
    from normviz.runs import final

    view = views.view("by_hand")
    (part,) = view.parts(ByHandSpec())
    (chart,) = view.panels(part, final(part.run(part.spec)), True, 14)
    fig = chart.figure
    rows = len(fig.data[0].cells.values[0])
    assert "<br>" in fig.layout.title.text  # a long title, wrapped
    assert fig.layout.height >= fig.layout.margin.t + fig.layout.margin.b + (14 + 12) * (rows + 1)
