"""Pages in AppTest while their runs train in the run service: rerun until every run is drawn final.

AppTest does not run a fragment's timer (`ui.show_run` follows a run with `st.fragment(run_every=...)`), so a
test reruns the page the way the timer would; each rerun also tells the service that the session is alive.
"""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest


def live(at: AppTest) -> bool:
    """Whether the page shows a run in progress: its progress line or the queue notice."""
    return bool(at.get("progress")) or any("ahead of yours" in str(i.value) for i in at.info)


def run_to_final(at: AppTest, timeout_s: float = 240, tick_s: float = 0.25) -> AppTest:
    """Run the page, then rerun it every `tick_s` until no run on it is in progress."""
    deadline = time.monotonic() + timeout_s
    at.run()
    while live(at):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page's runs did not finish within {timeout_s} s")
        time.sleep(tick_s)
        at.run()
    return at
