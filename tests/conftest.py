"""Shared test settings, the browser suite of the parallel run, and the e2e figures in the terminal summary."""

import os
import sys
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))
import e2e_helpers  # noqa: E402

# `python -m pytest` runs on two pytest-xdist workers (pyproject addopts): the browser and cluster tests one after
# another in one, the other tests spread over both. Two Ray clusters on one machine would compete for Ray's fixed
# ports, and two browser suites at once overloaded the two cores (the fuzz's page loads took 1.8 times as long).
BROWSER_AND_CLUSTER = ("tests/e2e/", "tests/test_cluster.py")

# app.py would otherwise train every default and preset on a background thread (normviz.warm) while the page
# tests count runs and time them; test_warm.py tests the warming itself. Servers started by the e2e tests
# inherit this, so their first page loads are measured uncached.
os.environ["NORMVIZ_WARM_UP"] = "0"
# The run service (normviz.service) trains on threads of the test process, and keeps nothing on disk between
# test runs; tests of the worker processes and the disk cache make their own RunService.
os.environ.setdefault("NORMVIZ_WORKERS", "0")
os.environ.setdefault("NORMVIZ_CACHE_DIR", "off")


class BrowserAndClusterTogether(LoadScopeScheduling):
    """The browser and cluster tests are one unit of work; every other test is a unit of its own. (xdist's own
    `loadgroup` does not group under pytest 9.2: it renames `item._nodeid`, which pytest no longer reads.)"""

    def _split_scope(self, nodeid: str) -> str:
        return "browser and cluster" if nodeid.startswith(BROWSER_AND_CLUSTER) else nodeid


def pytest_xdist_make_scheduler(config, log):
    return BrowserAndClusterTogether(config, log)


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
