"""(6) Memory: the peak RSS of one page run (a fresh process running app.py + the page in AppTest), and of
a real `streamlit run app.py` server (its process tree) while 10 browser sessions each open a view with a
different seed, so that the runs train at once: part 1 of bench/load_test.py.

    python -m bench --only memory
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import load_test
from bench.bench_pages import app_pages
from bench.common import Row

ROOT = Path(__file__).resolve().parents[1]
TARGET_GB = 2.5
SESSIONS = 10

# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's at fork, and the suite's own process is large
ONE_PAGE = """
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app.py", default_timeout=600)
at.run()
at.switch_page(sys.argv[1]).run()
assert not at.exception, [e.value for e in at.exception]
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))  # KiB
"""


def one_page_peak(page: str) -> float:
    """Peak RSS in GB of a fresh Python process that runs the app and one page in AppTest."""
    out = subprocess.run(
        [sys.executable, "-c", ONE_PAGE, page], cwd=ROOT, capture_output=True, text=True, check=True, timeout=900
    )
    return int(out.stdout.split()[-1]) / 2**20


def run(quick: bool = False) -> list[Row]:
    pages = app_pages()[:2] if quick else app_pages()
    per_page = {Path(p).stem: one_page_peak(p) for p in pages}
    worst = max(per_page, key=per_page.get)
    rows = [
        Row(
            "(6) peak RSS of one page run (fresh process)",
            f"{per_page[worst]:.2f} GB",
            "",
            "",
            f"< {TARGET_GB:g} GB",
            per_page[worst] < TARGET_GB,
            f"largest: {worst}; " + ", ".join(f"{k} {v:.2f}" for k, v in per_page.items()),
        )
    ]
    sessions = 3 if quick else SESSIONS
    load = load_test.main(["--sessions", str(sessions), "--churn", "0", "--rounds", "0"])
    peak = load["peak_rss_mb"] / 1024
    rows.append(
        Row(
            f"(6) peak RSS of the server, {sessions} browser sessions",
            f"{peak:.2f} GB",
            "",
            "",
            f"< {TARGET_GB:g} GB",
            peak < TARGET_GB,
            f"{sessions} different runs at once (bench/load_test.py); all complete after "
            f"{max(load['ready_s'], default=float('nan')):.0f} s; {load['errors']} errors",
        )
    )
    return rows
