"""Every "Reproduce in PyTorch" snippet runs: for each experiment module with `pytorch_snippet`, the
snippet of its Spec defaults and of each of its presets is executed in a fresh namespace, in subprocesses
(two per module, each importing torch and scikit-learn once and running half of the snippets), with a time
limit.
"""

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from normviz.config import Spec
from normviz.experiments import SPECS

MAX_LINES = 40  # non-blank lines: a snippet is something to read on one screen
CPU_SECONDS = 30  # per snippet, imports included (they target < 20 s of compute on a laptop CPU)
WALL_SECONDS = 300  # the test machine is shared; CPU time is the real limit
RUNNERS = 2  # subprocesses per module, each running a share of its snippets

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


def _spec_classes(module) -> list[type]:
    """The module's experiment Spec first, then the other Spec classes it defines (a page may use a wider one)."""
    name = SPECS.get(module.__name__.rpartition(".")[2])
    command = getattr(module, name) if name else None
    own = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, Spec) and v.__module__ == module.__name__ and v is not command
    ]
    return ([command] if command else []) + own


def _preset_spec(module, preset):
    """The preset's settings in the first spec class of the module that has all of its fields."""
    for cls in _spec_classes(module):
        if set(preset.changes) <= {f.name for f in dataclasses.fields(cls)}:
            return preset.spec(cls)
    raise AssertionError(f"no spec class of {module.__name__} has the fields {sorted(preset.changes)}")


def snippet_cases(name: str) -> dict[str, str]:
    """label -> code for a module: the defaults and every preset, identical code only once."""
    module = importlib.import_module(f"normviz.experiments.{name}")
    specs = {"defaults": _spec_classes(module)[0]()}
    specs |= {f"preset {p!r}": _preset_spec(module, preset) for p, preset in getattr(module, "PRESETS", {}).items()}
    cases, seen = {}, set()
    for label, spec in specs.items():
        code = module.pytorch_snippet(spec)
        if code not in seen:
            seen.add(code)
            cases[label] = code
    return cases


WITH_SNIPPETS = [m for m in SPECS if hasattr(importlib.import_module(f"normviz.experiments.{m}"), "pytorch_snippet")]


def test_the_pages_have_snippets():
    assert {"activations", "init_sweep"} <= set(WITH_SNIPPETS)


@pytest.mark.parametrize("name", WITH_SNIPPETS)
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
