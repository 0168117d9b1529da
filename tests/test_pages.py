"""Every page runs in AppTest with its defaults: no exception, and its charts are there."""

from pathlib import Path

import pytest
from live_pages import run_to_final
from streamlit.testing.v1 import AppTest

from normviz.views import VIEWS

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["pages/home.py"] + [v.page for v in VIEWS]
MIN_CHARTS = {"activations": 3, "init_sweep": 1, "train_vs_inference": 7, "running_stats": 4, "why_bn": 1}


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_without_exception(page):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240).run()
    run_to_final(at.switch_page(page))
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) >= MIN_CHARTS.get(Path(page).stem, 0)
