"""(6) Memory: the peak RSS of one page run (a fresh process running app.py + the page in AppTest), and of
a real `streamlit run app.py` server while 10 browser sessions (headless Chromium via Playwright) each
open a view with a different seed, so that 10 runs train at once and none is shared.

    python -m bench --only memory
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bench.bench_pages import app_pages
from bench.common import Row

ROOT = Path(__file__).resolve().parents[1]
TARGET_GB = 2.5
SESSIONS = 10
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHART = '[data-testid="stPlotlyChart"]'

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
    out = subprocess.run([sys.executable, "-c", ONE_PAGE, page], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=900)
    return int(out.stdout.split()[-1]) / 2**20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _wait_healthy(base: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(base + "/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the streamlit server did not come up")


def _nav_paths(browser, base: str) -> dict[str, str]:
    """Page file stem -> URL path, read from the running app's navigation (app.py sets the url_path)."""
    tab = browser.new_page()
    tab.goto(base)
    tab.wait_for_selector('a[data-testid*="NavLink"]', timeout=120_000)
    hrefs = tab.eval_on_selector_all('a[data-testid*="NavLink"]', "els => els.map(e => e.href)")
    tab.close()
    paths = [h[len(base):].strip("/") for h in hrefs if h.startswith(base)]
    return {p.replace("-", "_"): p for p in paths if p}


def server_peak(sessions: int = SESSIONS) -> tuple[float, float, int]:
    """(peak RSS GB of the server process, seconds until all sessions were idle, charts seen)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, stop = [0], threading.Event()

    def watch():  # VmHWM is the kernel's own peak; polling VmRSS as well guards against a reset
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], _status_kib(server.pid, "VmHWM"), _status_kib(server.pid, "VmRSS"))
            except OSError:
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        _wait_healthy(base)
        watcher.start()
        # the views that train and draw charts (home and BN by hand do neither)
        views = [Path(p).stem for p in app_pages() if "ui.chart(" in (ROOT / p).read_text()]
        start = time.monotonic()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            paths = _nav_paths(browser, base)
            views = [paths.get(v, v) for v in views]
            urls = [f"{base}/{views[i % len(views)]}?seed={i + 1}" for i in range(sessions)]
            tabs = []
            for url in urls:
                tab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                tab.goto(url)
                tabs.append(tab)
            charts = 0
            for tab in tabs:
                try:  # the script has started and drawn (a chart may sit in a hidden tab: attached suffices)
                    tab.wait_for_selector(CHART, state="attached", timeout=600_000)
                except PlaywrightTimeout:
                    pass  # counted below: a session without charts shows in the note
                tab.wait_for_selector(IDLE, timeout=600_000)
                time.sleep(1.0)
                tab.wait_for_selector(IDLE, timeout=600_000)
                charts += tab.locator(CHART).count()
            elapsed = time.monotonic() - start
            browser.close()
    finally:
        stop.set()
        server.terminate()
        server.wait(20)
    return peak[0] / 2**20, elapsed, charts


def run(quick: bool = False) -> list[Row]:
    pages = app_pages()[:2] if quick else app_pages()
    per_page = {Path(p).stem: one_page_peak(p) for p in pages}
    worst = max(per_page, key=per_page.get)
    rows = [Row("(6) peak RSS of one page run (fresh process)", f"{per_page[worst]:.2f} GB", "", "",
                f"< {TARGET_GB:g} GB", per_page[worst] < TARGET_GB,
                f"largest: {worst}; " + ", ".join(f"{k} {v:.2f}" for k, v in per_page.items()))]
    sessions = 3 if quick else SESSIONS
    peak, seconds, charts = server_peak(sessions)
    rows.append(Row(f"(6) peak RSS of the server, {sessions} browser sessions", f"{peak:.2f} GB", "", "",
                    f"< {TARGET_GB:g} GB", peak < TARGET_GB,
                    f"{sessions} different runs at once; all idle after {seconds:.0f} s; {charts} charts drawn"))
    return rows


