"""Shared test settings, the serial group of the parallel run, and the e2e figures in the terminal summary."""

import os
import sys
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))
import e2e_helpers  # noqa: E402

# `python -m pytest` runs on two pytest-xdist workers (pyproject addopts). The browser suite shares one app
# server and one Chromium per worker, and two Ray clusters on one machine would compete for Ray's fixed ports:
# these run one after another in one worker, the other tests beside them in the other.
SERIAL = ("tests/e2e/", "tests/test_cluster.py")

# app.py would otherwise train every default and preset on a background thread (normviz.warm) while the page
# tests count runs and time them; test_warm.py tests the warming itself. Servers started by the e2e tests
# inherit this, so their first page loads are measured uncached.
os.environ["NORMVIZ_WARM_UP"] = "0"
# The run service (normviz.service) trains on threads of the test process, and keeps nothing on disk between
# test runs; tests of the worker processes and the disk cache make their own RunService.
os.environ.setdefault("NORMVIZ_WORKERS", "0")
os.environ.setdefault("NORMVIZ_CACHE_DIR", "off")


class SerialBrowserAndCluster(LoadScopeScheduling):
    """Every other test is a unit of its own. (xdist's own `loadgroup` does not group under pytest 9.2: it renames
    `item._nodeid`, which pytest no longer reads.)"""

    def _split_scope(self, nodeid: str) -> str:
        return "serial" if nodeid.startswith(SERIAL) else nodeid


def pytest_xdist_make_scheduler(config, log):
    return SerialBrowserAndCluster(config, log)


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller, or a run without workers
        e2e_helpers.SUMMARY.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter):
    lines = e2e_helpers.SUMMARY.read_text().splitlines() if e2e_helpers.SUMMARY.exists() else []
    figures = [line for line in lines if not line.startswith("screenshot ")]
    if figures:
        terminalreporter.write_sep("-", "normviz e2e figures")
        for line in figures:
            terminalreporter.write_line(line)
    if shots := len(lines) - len(figures):
        terminalreporter.write_sep("-", "normviz e2e screenshots")
        terminalreporter.write_line(f"{shots} full-page screenshots in {e2e_helpers.SHOTS}")
