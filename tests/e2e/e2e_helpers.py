"""Driving the app in headless Chromium: start/stop `streamlit run`, wait until a page is idle, read its
charts, widgets and alerts. Used by the e2e tests (tests/e2e) and the load benchmark (bench/load_test.py)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(os.environ.get("NORMVIZ_SHOTS", "/tmp/normviz-e2e-shots"))
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
LOAD_TIMEOUT_S = float(os.environ.get("NORMVIZ_E2E_TIMEOUT", "300"))  # a page's first (training) load
VIEWPORT = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}
# A chart on the page: a finished run's st.plotly_chart, or a live frame's chart (ui._live_plotly).
CHARTS = '[data-testid="stPlotlyChart"], [data-testid="normvizLiveChart"]'
# Each animation frame the browser paints: how many charts are displayed (a hidden element that the browser
# keeps while it mounts the next one is not seen), how often one of them is blank, and a digest of the charts'
# data while a run's progress line is shown (an intermediate frame).
WATCH_FRAMES = (
    """() => {
    const CHARTS = '"""
    + CHARTS
    + """';
    const seen = window.__live = {maxCharts: 0, drawn: false, blank: 0, samples: 0, frames: new Set()};
    const sample = () => {
        const charts = [...document.querySelectorAll(CHARTS)].filter(c => c.getClientRects().length);
        seen.maxCharts = Math.max(seen.maxCharts, charts.length);
        if (document.querySelector('[data-testid="stProgress"]')) {
            const plots = charts.map(c => c.matches('.js-plotly-plot') ? c : c.querySelector('.js-plotly-plot'));
            const drawn = plots.filter(g => g && g._fullData);
            seen.samples += 1;
            if (charts.length && drawn.length === charts.length) seen.drawn = true;
            else if (seen.drawn) seen.blank += 1;  // a chart blanked after the first frame was drawn
            if (drawn.length) seen.frames.add(drawn.map(g => g._fullData.map(t => t._length).join(',')).join('|'));
        }
    };
    const tick = () => { requestAnimationFrame(tick); sample(); };
    requestAnimationFrame(tick);
    setInterval(sample, 100);  // also while no frame is painted (a busy renderer)
}"""
)
# measured figures and screenshots, one per line: pytest's terminal summary prints them (tests/conftest.py),
# also when the tests ran in a pytest-xdist worker process
SUMMARY = SHOTS / "summary.txt"


def _summarise(line: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with SUMMARY.open("a") as out:
        out.write(line.replace("\n", " ") + "\n")


def report(line: str) -> None:
    """A measured figure (a load time, a fuzz count) for the terminal summary."""
    _summarise(line)


# --- the server ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    proc: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(log: Path, port: int | None = None, env: dict[str, str] | None = None) -> Server:
    """`streamlit run app.py` from the repo root on a free port, once /_stcore/health answers; `env` adds to
    this process's environment for the server only."""
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{server.log_text()[-3000:]}")
        try:
            if urllib.request.urlopen(server.base + "/_stcore/health", timeout=2).read() == b"ok":
                return server
        except OSError:
            time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"streamlit did not answer /_stcore/health within 120 s:\n{server.log_text()[-3000:]}")


def stop_server(server: Server) -> None:
    """Terminate the server and its process group (it was started in a session of its own)."""
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(5)


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


# --- waiting for the app ------------------------------------------------------------------------
_READY_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    if (!document.querySelector('[data-testid="stSidebarNav"], [data-testid="stMain"] h1, '
                                + '[data-testid="stException"]')) return false;  // not merely "not started"
    if (document.querySelector('[data-testid="stProgress"]')) return false;
    if (document.querySelector('[data-testid*="Skeleton"]')) return false;  // an element still loading its code
    const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
        .filter(c => c.offsetParent !== null);  // a chart in a hidden tab may wait to be drawn
    return charts.every(c => { const g = c.querySelector('.js-plotly-plot'); return g && g.data; });
}"""


def wait_idle(page, timeout_s: float = LOAD_TIMEOUT_S, settle_s: float = 0.4) -> None:
    """Until the script has run and finished, no progress bar is shown, every visible chart has been
    drawn by Plotly, and this still holds `settle_s` later (a rerun may follow at once)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left_ms = max(1000.0, (deadline - time.monotonic()) * 1000)
        page.wait_for_function(_READY_JS, timeout=left_ms, polling=100)
        # a fresh browser fetches each widget's code on first use: elements appear after the script ended
        page.wait_for_load_state("networkidle", timeout=left_ms)
        time.sleep(settle_s)
        if page.evaluate(_READY_JS):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not become idle")


def stable(read, timeout_s: float = 20, interval_s: float = 0.5):
    """Poll `read()` until two readings `interval_s` apart agree; returns the reading."""
    deadline, last = time.monotonic() + timeout_s, read()
    while True:
        time.sleep(interval_s)
        now = read()
        if now == last or time.monotonic() > deadline:
            return now
        last = now


def goto_idle(page, url: str, timeout_s: float = LOAD_TIMEOUT_S) -> float:
    """Open a URL and wait until the page is idle; returns the seconds it took."""
    t = time.monotonic()
    page.goto(url, wait_until="domcontentloaded")
    wait_idle(page, timeout_s)
    return time.monotonic() - t


def skip_chart_drawing(ctx) -> None:
    """Serve Streamlit's Plotly chart component (a 4.7 MB module) as an empty component in this context:
    the app runs as usual but the browser draws no chart. For the fuzz tabs, where the charts are the
    default ones that the page test draws, this halves the time of a page load on a 2-core machine."""
    ctx.route(
        "**/static/js/PlotlyChart.*.js",
        lambda route: route.fulfill(
            status=200,
            content_type="application/javascript",
            body="const Empty = () => null; export { Empty as PlotlyChart, Empty as default };",
        ),
    )


# --- reading the page ---------------------------------------------------------------------------
def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def problems(page) -> list[str]:
    """Exception elements and traceback text on the page: what a student must never see."""
    found = [f"exception element: {t[:300]!r}" for t in page.locator('[data-testid="stException"]').all_inner_texts()]
    if "Traceback" in page.locator("body").inner_text():
        found.append("'Traceback' in the page text")
    return found


def alerts(page, kind: str = "") -> list[str]:
    """Texts of the page's alerts; kind "Warning", "Error", "Info" or "Success" for one kind only."""
    selector = f'[data-testid="stAlertContent{kind}"]' if kind else '[data-testid="stAlert"]'
    return page.locator(selector).all_inner_texts()


def alert_markdown(page, kind: str = "") -> list[str]:
    """Like `alerts`, with inline code written back between backticks, as the message's Markdown had it."""
    selector = f'[data-testid="stAlertContent{kind}"]' if kind else '[data-testid="stAlert"]'
    return page.locator(selector).evaluate_all(
        "els => els.map(e => { const c = e.cloneNode(true);"
        " c.querySelectorAll('code').forEach(k => { k.textContent = '`' + k.textContent + '`'; });"
        " return c.textContent; })"
    )


def alert_markup(page, kind: str = "Warning") -> list[str]:
    """Elements in the text of alert messages other than paragraphs and inline code: what a user's text
    rendered as Markdown would create (an image, a link, emphasis, coloured text, an icon)."""
    return page.locator(f'[data-testid="stAlertContent{kind}"] [data-testid="stMarkdownContainer"]').evaluate_all(
        "els => els.flatMap(e => [...e.querySelectorAll('*')]"
        ".filter(k => !['P', 'CODE'].includes(k.tagName) || k.getAttribute('style'))"
        ".map(k => k.outerHTML.slice(0, 200)))"
    )


def main_text_digest(page) -> str:
    """A digest of the main area's text, for a page that shows tables and numbers rather than charts."""
    return page.evaluate("""() => {
        const text = (document.querySelector('[data-testid="stMain"]') || document.body).innerText;
        let h = 2166136261;
        for (let i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619); }
        return (h >>> 0).toString(16) + ':' + text.length;
    }""")


def view_digest(page) -> list[str]:
    """What a setting should change: the charts' data, or the main text on a page without charts."""
    return chart_digest(page) or ["text:" + main_text_digest(page)]


def chart_digest(page) -> list[str]:
    """A digest (hash:length) of every chart's data as Plotly holds it in the browser, uids dropped."""
    return page.evaluate(
        """(charts) => [...document.querySelectorAll(charts)]
        .filter(c => c.getClientRects().length)
        .map(c => c.matches('.js-plotly-plot') ? c : c.querySelector('.js-plotly-plot'))
        .filter(g => g)
        .map(g => {
            const text = JSON.stringify(g.data, (k, v) => k === 'uid' ? undefined
                : (ArrayBuffer.isView(v) ? Array.from(v) : v));
            let h = 2166136261;
            for (let i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619); }
            return (h >>> 0).toString(16) + ':' + text.length;
        })""",
        CHARTS,
    )


def chart_layout_problems(page, charts: str = CHARTS) -> list[str]:
    """What a reader would see wrong in the drawn charts: a title cut by the chart's edge or under Plotly's
    toolbar, tick labels of one axis overlapping or under 10 px, a legend over an axis title."""
    return page.evaluate(
        """(charts) => {
        const box = e => e.getBoundingClientRect();
        const hit = (a, b) => a.width > 0 && b.width > 0 && a.left < b.right - 1 && b.left < a.right - 1
            && a.top < b.bottom - 1 && b.top < a.bottom - 1;
        const out = [];
        [...document.querySelectorAll(charts)].filter(c => c.getClientRects().length)
            .map(c => c.matches('.js-plotly-plot') ? c : c.querySelector('.js-plotly-plot')).filter(g => g)
            .forEach((plot, i) => {
                const frame = box(plot), title = plot.querySelector('.gtitle');
                const name = `chart ${i + 1} (${(title ? title.textContent : '').slice(0, 40)})`;
                const bar = plot.querySelector('.modebar');
                plot.querySelectorAll('.gtitle').forEach(t => {
                    const b = box(t);
                    if (b.left < frame.left - 1 || b.right > frame.right + 1 || b.top < frame.top - 1)
                        out.push(`${name}: title cut`);
                    if (bar && hit(b, box(bar))) out.push(`${name}: toolbar over the title`);
                });
                plot.querySelectorAll('.annotation-text').forEach(t => {
                    const b = box(t);
                    if (b.width && (b.left < frame.left - 1 || b.right > frame.right + 1))
                        out.push(`${name}: ${t.textContent.slice(0, 30)} cut`);
                });
                plot.querySelectorAll('.xaxislayer-above, .yaxislayer-above').forEach(axis => {
                    const ticks = [...axis.querySelectorAll('text')].filter(t => t.textContent.trim());
                    const boxes = ticks.map(box);
                    const shared = (a, b) => Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
                        * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
                    for (let a = 0; a < boxes.length; a++) for (let b = a + 1; b < boxes.length; b++)  // a quarter:
                        if (shared(boxes[a], boxes[b]) > 0.25 * Math.min(  // a rotated label's box is loose
                            boxes[a].width * boxes[a].height, boxes[b].width * boxes[b].height))
                            out.push(`${name}: ticks ${ticks[a].textContent} and ${ticks[b].textContent} overlap`);
                    ticks.filter(t => parseFloat(getComputedStyle(t).fontSize) < 10)
                        .forEach(t => out.push(`${name}: tick label ${t.textContent} under 10 px`));
                });
                plot.querySelectorAll('.legend').forEach(legend => {
                    plot.querySelectorAll('[class*="title"] text').forEach(t => {
                        if (!t.closest('.gtitle') && !t.closest('.legend') && hit(box(legend), box(t)))
                            out.push(`${name}: legend over the axis title ${t.textContent}`);
                    });
                });
            });
        return [...new Set(out)];
    }""",
        charts,
    )


def widget_state(page, area: str = "sidebar") -> dict[str, str]:
    """Kind:label -> value of every widget in the sidebar (also those in a collapsed expander), or in the
    main area (area="main")."""
    return page.evaluate(
        """(area) => {
        const root = area === 'main' ? document.querySelector('[data-testid="stMain"]')
                     : document.querySelector('[data-testid="stSidebarUserContent"]')
                       || document.querySelector('[data-testid="stSidebar"]');
        const out = {};
        if (!root) return out;
        const kinds = ['stSlider', 'stSelectbox', 'stMultiSelect', 'stCheckbox', 'stToggle', 'stTextInput',
                       'stNumberInput', 'stTextArea', 'stRadio', 'stSegmentedControl'];
        for (const kind of kinds) {
            root.querySelectorAll(`[data-testid="${kind}"]`).forEach((el, i) => {
                const lab = el.querySelector('[data-testid="stWidgetLabel"]');
                const name = `${kind}:${lab ? lab.textContent.trim() : i}`;
                let value;
                if (kind === 'stSlider') value = [...el.querySelectorAll('input[type="range"], [role="slider"]')]
                    .map(t => t.getAttribute('aria-valuetext') || t.value).join('|');
                else if (kind === 'stCheckbox' || kind === 'stToggle')
                    value = String([...el.querySelectorAll('input')].map(x => x.checked));
                else if (kind === 'stSelectbox') value = [...el.querySelectorAll('input')].map(x => x.value).join('|');
                else if (kind === 'stMultiSelect' || kind === 'stSegmentedControl' || kind === 'stRadio')
                    value = el.textContent.replace(lab ? lab.textContent : '', '').trim();
                else value = [...el.querySelectorAll('input, textarea')].map(x => x.value).join('|');
                out[name] = value;
            });
        }
        return out;
    }""",
        area,
    )


def nav_links(page) -> list[tuple[str, str]]:
    """(href, title) of every link in the app's sidebar navigation."""
    return [
        tuple(x)
        for x in page.eval_on_selector_all(
            '[data-testid="stSidebarNav"] a[href]',
            "els => els.map(e => [e.href, e.innerText.split('\\n').pop().trim()])",
        )
    ]


def save_shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    _summarise(f"screenshot {path}")
    return path


@dataclass(frozen=True)
class AppPage:
    index: int
    url: str  # without a query
    title: str
    slug: str


def pages_from_nav(base: str, links: list[tuple[str, str]]) -> list[AppPage]:
    """The app's pages from its navigation links, the home page first."""
    seen, pages = set(), []
    for href, title in [(base + "/", "Home")] + links:
        url = href.split("?")[0].rstrip("/") or base
        if url.startswith(base) and url not in seen:
            seen.add(url)
            pages.append(AppPage(len(pages), url, title, url[len(base) :].strip("/") or "home"))
    return pages
