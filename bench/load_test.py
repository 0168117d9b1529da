"""Load test: a class opens the app at once, and tabs are closed halfway through training.

    python bench/load_test.py [--sessions 10] [--churn 20] [--rounds 2]

Starts `streamlit run app.py` on a free port and drives headless Chromium (/usr/bin/chromium):

1. `--sessions` browser sessions (one context each, like separate students) open the pages of the
   navigation at once, each with its own seed so every one trains (two share settings, to exercise a
   run followed by a second session). Reported: errors (exception elements, tracebacks, page errors,
   timeouts; target 0), the seconds until each page's charts were complete, the server's peak RSS.
2. `--churn` sessions open pages with new seeds, wait until each is training (or done, for a page that
   computes at once), and are all closed, most of them mid-training; `--rounds` times. Reported per
   round: server RSS and thread count before/during/after, and the server's CPU time in the 10 s after
   all tabs closed (near zero if no training was left running).

The server's memory is the RSS of its whole process tree (psutil), sampled every 0.2 s. The server runs
without its background warm-up (NORMVIZ_WARM_UP=0), so what is measured is what the sessions cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import e2e_helpers as h  # noqa: E402

MB = 1024 * 1024


class Sampler(threading.Thread):
    """Peak RSS of the server's process tree, sampled in the background."""

    def __init__(self, pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.proc, self.every_s, self.peak, self._stop = psutil.Process(pid), every_s, 0, threading.Event()

    def tree(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        total = 0
        for p in self.tree():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def cpu_s(self) -> float:
        total = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def threads(self) -> int:
        return self.proc.num_threads()

    def run(self):
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self.rss())

    def stop(self):
        self._stop.set()


@dataclass
class Session:
    label: str
    url: str
    ctx: object = None
    page: object = None
    ready_s: float | None = None
    charts: int = 0
    errors: list = field(default_factory=list)


def _open(browser, s: Session) -> None:
    s.ctx = browser.new_context(viewport=h.VIEWPORT)
    s.page = s.ctx.new_page()
    s.page.on("pageerror", lambda exc: s.errors.append(f"page error: {str(exc)[:120]}"))
    s.page.goto(s.url, wait_until="commit")


def _spec_pages(browser, base: str) -> list[h.AppPage]:
    ctx = browser.new_context(viewport=h.VIEWPORT)
    try:
        page = ctx.new_page()
        h.goto_idle(page, base + "/")
        pages = h.pages_from_nav(base, h.nav_links(page))
    finally:
        ctx.close()
    return [p for p in pages if p.slug != "home"]


def concurrent_sessions(browser, base: str, pages: list[h.AppPage], n: int, timeout_s: float) -> list[Session]:
    sessions = []
    for i in range(n):
        p = pages[i % len(pages)]
        seed = 1000 + (i - len(pages) if i >= len(pages) and i == n - 1 else i)  # the last one follows a run
        sessions.append(Session(f"{p.slug} seed={seed}", f"{p.url}?seed={seed}"))
    t0 = time.monotonic()
    for s in sessions:
        _open(browser, s)
    pending = list(sessions)
    while pending and time.monotonic() - t0 < timeout_s:
        for s in list(pending):
            try:
                ready = s.page.evaluate(h._READY_JS)
            except Exception:  # navigation in progress
                ready = False
            if ready:
                try:
                    h.wait_idle(s.page, timeout_s=60, settle_s=0.3)
                except Exception as exc:
                    s.errors.append(f"not idle: {str(exc).splitlines()[0][:100]}")
                s.ready_s = time.monotonic() - t0
                s.charts = len(h.chart_digest(s.page))
                s.errors += h.problems(s.page)
                pending.remove(s)
        time.sleep(0.25)
    for s in pending:
        s.errors.append(f"not complete after {timeout_s:.0f} s")
    return sessions


def churn(browser, pages: list[h.AppPage], n: int, first_seed: int, sampler: Sampler) -> dict:
    """Open n sessions with fresh seeds, wait until they train, close them all; measure the server."""
    before = dict(rss=sampler.rss(), threads=sampler.threads())
    sessions = [
        Session(p.slug, f"{p.url}?seed={first_seed + i}") for i, p in ((i, pages[i % len(pages)]) for i in range(n))
    ]
    for s in sessions:
        _open(browser, s)
    deadline, seen = time.monotonic() + 240, set()
    while len(seen) < n and time.monotonic() < deadline:  # each is training (a progress bar) or already done
        for i, s in enumerate(sessions):
            try:
                if i not in seen and (
                    s.page.locator('[data-testid="stProgress"]').count() or s.page.evaluate(h._READY_JS)
                ):
                    seen.add(i)
            except Exception:  # navigation in progress
                pass
        time.sleep(0.2)
    training = sum(bool(s.page.locator('[data-testid="stProgress"]').count()) for s in sessions)
    during = dict(rss=sampler.rss(), threads=sampler.threads())
    for s in sessions:
        s.ctx.close()
    time.sleep(5)  # a stopped script ends at its next redraw (about every 0.5 s)
    cpu0 = sampler.cpu_s()
    time.sleep(10)
    return dict(
        before=before,
        during=during,
        training_at_close=training,
        after=dict(rss=sampler.rss(), threads=sampler.threads()),
        cpu_after_close=sampler.cpu_s() - cpu0,
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--churn", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600, help="seconds for the concurrent sessions to complete")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    log = Path(tempfile.mkdtemp(prefix="normviz-load-")) / "server.log"
    # the server's own warm-up (normviz.warm) would train in the background and blur what the sessions cost
    server = h.start_server(log, env={"NORMVIZ_WARM_UP": "0"})
    sampler = Sampler(server.proc.pid)
    sampler.start()
    out = {}
    try:
        with sync_playwright() as pw:
            browser = h.launch_chromium(pw)
            pages = _spec_pages(browser, server.base)
            idle = dict(rss=sampler.rss(), threads=sampler.threads())
            t = time.monotonic()
            sessions = concurrent_sessions(browser, server.base, pages, a.sessions, a.timeout)
            wall = time.monotonic() - t
            peak = sampler.peak
            for s in sessions:
                s.ctx.close()
            time.sleep(3)
            rounds = [churn(browser, pages, a.churn, 5000 + 100 * r, sampler) for r in range(a.rounds)]
            browser.close()
        log_errors = server.log_text().count("Traceback")
    finally:
        sampler.stop()
        h.stop_server(server)

    print(f"\n1. {len(sessions)} concurrent sessions (each its own browser context), pages from the navigation")
    print(f"{'session':34} {'ready s':>8} {'charts':>7}  errors")
    for s in sessions:
        ready = f"{s.ready_s:8.1f}" if s.ready_s is not None else f"{'-':>8}"
        print(f"{s.label:34} {ready} {s.charts:7d}  {'; '.join(s.errors) or 0}")
    times = [s.ready_s for s in sessions if s.ready_s is not None]
    errors = sum(len(s.errors) for s in sessions)
    print(f"errors: {errors} (target 0); server tracebacks in its log: {log_errors}")
    if times:
        print(
            f"charts complete after: min {min(times):.1f} s, median {statistics.median(times):.1f} s, "
            f"max {max(times):.1f} s (all {len(sessions)} opened at once; wall {wall:.0f} s)"
        )
    print(f"server RSS: idle {idle['rss'] / MB:.0f} MB, peak {peak / MB:.0f} MB; threads idle {idle['threads']}")

    print(
        f"\n2. {a.churn} sessions opened and closed ('training': how many were training when closed), {a.rounds} rounds"
    )
    print(
        f"{'round':>5} {'training':>8} {'RSS before':>11} {'during':>8} {'after':>8} {'threads b/d/a':>14} "
        f"{'CPU s in 10 s after close':>26}"
    )
    for i, r in enumerate(rounds, 1):
        print(
            f"{i:5d} {r['training_at_close']:8d} {r['before']['rss'] / MB:9.0f}MB "
            f"{r['during']['rss'] / MB:6.0f}MB "
            f"{r['after']['rss'] / MB:6.0f}MB {r['before']['threads']:>5}/{r['during']['threads']}/"
            f"{r['after']['threads']:<5} {r['cpu_after_close']:26.2f}"
        )
    out = dict(
        errors=errors,
        log_errors=log_errors,
        ready_s=times,
        peak_rss_mb=peak / MB,
        idle=idle,
        rounds=rounds,
        sessions=len(sessions),
    )
    return out


if __name__ == "__main__":
    result = main()
    sys.exit(1 if result["errors"] or result["log_errors"] else 0)
