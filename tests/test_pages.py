"""Every page runs in AppTest with its defaults: no exception, and its charts are there."""

from pathlib import Path

import pytest
from live_pages import run_to_final
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "pages/home.py",
    "pages/activations.py",
    "pages/init_sweep.py",
    "pages/running_stats.py",
    "pages/train_vs_inference.py",
    "pages/alternatives.py",
    "pages/by_hand.py",
    "pages/why_bn.py",
]
MIN_CHARTS = {
    "pages/activations.py": 3,
    "pages/init_sweep.py": 1,
    "pages/train_vs_inference.py": 7,
    "pages/running_stats.py": 4,
    "pages/why_bn.py": 1,
}


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_without_exception(page):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240).run()
    run_to_final(at.switch_page(page))
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) >= MIN_CHARTS.get(page, 0)
