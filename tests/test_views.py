"""The view registry is the one list of pages: each view's page file, Spec class and presets exist, every page
file is a view (or home), app.py's navigation and the tour name views through it."""

import ast
from pathlib import Path

import pytest

from normviz import views
from normviz.config import Spec
from normviz.lessons.tour import TOUR

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("view", views.VIEWS, ids=lambda v: v.name)
def test_a_view_has_its_page_spec_and_presets(view):
    assert (ROOT / view.page).is_file()
    assert issubclass(view.spec_cls, Spec)
    for name, preset in view.presets.items():
        assert isinstance(preset.spec(view.spec_cls), view.spec_cls), name


def test_every_page_file_is_a_view_and_the_tour_names_only_views():
    pages = {p.stem for p in (ROOT / "pages").glob("*.py")} - {"home"}
    assert pages == set(views.BY_NAME)
    assert {s.view for s in TOUR} <= set(views.BY_NAME)


def test_app_builds_its_navigation_from_the_registry():
    """app.py names no page of a view by hand (a page listed twice is a page that gets out of step)."""
    strings = {n.value for n in ast.walk(ast.parse((ROOT / "app.py").read_text())) if isinstance(n, ast.Constant)}
    assert not strings & ({v.page for v in views.VIEWS} | {v.title for v in views.VIEWS})


def test_an_unknown_view_names_the_known_ones():
    with pytest.raises(KeyError, match="activations"):
        views.view("nope")


def test_every_sidebar_names_settings_of_its_spec_once():
    for view in views.VIEWS:
        names = view.sidebar or list(view.spec_cls.field_info())
        assert len(set(names)) == len(names) and set(names) <= set(view.spec_cls.field_info()), view.name


def test_pages_are_tables_of_contents():
    """A page draws its view through ui (controls, panels); its words and charts live in lessons/<view>.py."""
    for page in (ROOT / "pages").glob("*.py"):
        source = page.read_text()
        assert len(source.splitlines()) <= 70, page.name
        assert "ui.chart(" not in source and "plotly" not in source, page.name  # charts come as panels


def test_a_views_runs_and_panels_come_from_the_registry():
    for view in views.VIEWS:
        spec = view.spec_cls()
        parts = view.parts(spec)
        assert parts and all(isinstance(p.spec, Spec) and p.page == spec for p in parts), view.name
        assert all(p.run.__module__ == f"normviz.experiments.{p.experiment}" for p in parts), view.name


def test_every_experiments_result_keeps_the_result_protocol():
    """Each experiment's first frame at tiny settings: what the pages, the CLI and the report rely on."""
    from normviz.experiments import Result, run_of, spec_classes

    for name, spec_cls in spec_classes().items():
        first = next(run_of(spec_cls)(spec_cls()))
        assert isinstance(first, Result) and 0.0 <= first.progress <= 1.0, name
        diverged_at = getattr(first, "diverged_at", [])
        assert isinstance(diverged_at, list), name
        if hasattr(first, "models") and name != "why_lr_range":  # lr-range: each model at every rate
            assert len(diverged_at) == len(first.models), name
