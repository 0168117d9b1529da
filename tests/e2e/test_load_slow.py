"""The load test (bench/load_test.py) as a test: not in the default run (`-m slow` runs it, several minutes).

It starts its own server, so it measures only its own sessions."""

from __future__ import annotations

import os
import sys

import e2e_helpers as h
import pytest

pytestmark = pytest.mark.slow  # not "browser": `-m browser` (the e2e run) must not start it


def test_a_class_at_once_and_tabs_closed_mid_training():
    if not os.path.exists(h.CHROMIUM):
        pytest.skip(f"{h.CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    sys.path.insert(0, str(h.ROOT))
    from bench import load_test

    result = load_test.main(["--sessions", "10", "--churn", "20", "--rounds", "2"])
    assert result["errors"] == 0 and result["log_errors"] == 0
    assert len(result["ready_s"]) == result["sessions"]
    idle_threads = result["idle"]["threads"]
    for r in result["rounds"]:
        assert r["cpu_after_close"] < 2.0, r  # nothing left training once every tab is closed
        # each session runs its script on a thread of its own: 20 left behind would show; the server's own
        # pool varies by a few (8-13 measured with no session open)
        assert r["after"]["threads"] <= idle_threads + 5, r
    first, last = result["rounds"][0], result["rounds"][-1]
    assert last["after"]["rss"] - first["after"]["rss"] < 150 * 2**20, "RSS keeps growing with closed tabs"
