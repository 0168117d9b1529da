"""Every "Reproduce in PyTorch" snippet runs: for each view, the snippets its lesson module shows for the view's
defaults (and each of its `view` choices), and for each of its presets, are executed in a fresh namespace, in
subprocesses (two per view, each importing torch and scikit-learn once and running half of the snippets), with a
time limit.
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from normviz import views
from normviz.config import Spec
from normviz.experiments import SPECS

MAX_LINES = 40  # non-blank lines: a snippet is something to read on one screen
CPU_SECONDS = 30  # per snippet, imports included (they target < 20 s of compute on a laptop CPU)
WALL_SECONDS = 300  # the test machine is shared; CPU time is the real limit
RUNNERS = 2  # subprocesses per view, each running a share of its snippets

RUNNER = r"""
import contextlib, io, json, signal, sys, time, traceback
signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("wall-clock limit")))
for path in sys.argv[2:]:
    out, t0, c0 = io.StringIO(), time.time(), time.process_time()
    signal.alarm(int(sys.argv[1]))
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(open(path).read(), path, "exec"), {"__name__": "__main__"})
        error = None
    except BaseException:
        error = traceback.format_exc(limit=-3)
    signal.alarm(0)
    print(json.dumps({"path": path, "error": error, "stdout": out.getvalue()[-2000:],
                      "cpu": time.process_time() - c0, "wall": time.time() - t0}), flush=True)
"""


def page_specs(view: views.View) -> dict[str, Spec]:
    """label -> spec: the view's defaults, each of its `view` choices and each of its presets."""
    cls = view.spec_cls
    specs = {"defaults": cls()}
    specs |= {f"view {c!r}": cls(view=c) for c in cls.field_info().get("view", {}).get("choices") or ()}
    return specs | {f"preset {p!r}": preset.spec(cls) for p, preset in view.presets.items()}


def page_snippets(name: str, spec: Spec) -> list[str]:
    """What the view's page shows under "Reproduce in PyTorch" (Train vs inference: one per experiment)."""
    lesson = importlib.import_module(f"normviz.lessons.{name}")
    return lesson.pytorch_snippets(spec) if hasattr(lesson, "pytorch_snippets") else [lesson.pytorch_snippet(spec)]


def snippet_cases(name: str) -> dict[str, str]:
    """label -> code for a view: every snippet of its defaults and presets, identical code only once."""
    cases, seen = {}, set()
    for label, spec in page_specs(views.view(name)).items():
        for i, code in enumerate(page_snippets(name, spec)):
            if code not in seen:
                seen.add(code)
                cases[f"{label}, snippet {i + 1}"] = code
    return cases


NAMES = [v.name for v in views.VIEWS]


def test_the_cases_reach_every_experiment():
    """Some default or preset of a view runs each experiment, so each experiment's snippet is among the cases."""
    reached = {part.experiment for v in views.VIEWS for spec in page_specs(v).values() for part in v.parts(spec)}
    assert reached == set(SPECS)


@pytest.mark.parametrize("name", NAMES)
def test_snippets_run(name, tmp_path):
    cases = snippet_cases(name)
    paths = {}
    for i, (label, code) in enumerate(cases.items()):
        lines = [line for line in code.splitlines() if line.strip()]
        assert len(lines) <= MAX_LINES, f"{name} {label}: {len(lines)} lines"
        assert "import torch" in code, f"{name} {label}: not a PyTorch script"
        paths[label] = tmp_path / f"snippet_{i}.py"
        paths[label].write_text(code)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH="")  # the snippet must not need normviz
    # one single-threaded runner per core, each with every other snippet: the test machine has two cores
    files = list(map(str, paths.values()))
    runners = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(WALL_SECONDS), *files[i::RUNNERS]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for i in range(min(RUNNERS, len(files)))
    ]
    outputs = [runner.communicate(timeout=WALL_SECONDS * len(files) + 60) for runner in runners]
    reports = {Path(r["path"]): r for out, _ in outputs for r in map(json.loads, out.splitlines())}
    stderr = "".join(err for _, err in outputs)
    failures = []
    for label, path in paths.items():
        r = reports.get(path)
        if r is None:
            failures.append(f"{label}: did not run ({stderr[-500:]})")
        elif r["error"]:
            failures.append(f"{label}: {r['error']}\n--- code ---\n{cases[label]}")
        elif not r["stdout"].strip():
            failures.append(f"{label}: printed nothing")
        elif r["cpu"] > CPU_SECONDS:
            failures.append(f"{label}: {r['cpu']:.0f} s of CPU (limit {CPU_SECONDS} s)")
    assert not failures, f"{name}:\n" + "\n\n".join(failures)
