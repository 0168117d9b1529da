"""Bad input everywhere, without a browser: URL parsing of every spec, CLI usage errors, divergence, and a
source scan for dangerous sinks (pickle, eval/exec, torch.load without weights_only, unsafe HTML)."""

import ast
import json
import math
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from malformed_queries import malformed_queries, names_key, spec_classes, spec_kinds

from normviz import cli, views
from normviz.config import Spec

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {v.name: v.spec_cls for v in views.VIEWS}
SPECS = {cls.__name__: cls for cls in spec_classes()}  # the experiments' and the views'


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_from_query_never_raises_and_names_the_key(spec_name):
    spec_cls = SPECS[spec_name]
    default = spec_cls()
    cases = malformed_queries(default.to_query(), spec_kinds(default.to_query()))
    assert sum(c.expect is not None for c in cases) >= 30
    for case in cases:
        params = parse_qs(case.query, keep_blank_values=True)  # what Streamlit's st.query_params holds
        spec, warnings = spec_cls.from_query(params)  # must not raise
        assert isinstance(spec, spec_cls)
        if case.expect is None:
            continue
        assert names_key(warnings, case.expect), (case.label, case.query[:80], warnings)
        ignored = {k for k in params if k not in default.to_dict()}
        if not ignored or case.expect in ignored:  # one bad value: everything else keeps its default
            assert spec == default, (case.label, spec)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_from_query_round_trips_the_url_the_app_writes(spec_name):
    spec_cls = SPECS[spec_name]
    spec = spec_cls()
    again, warnings = spec_cls.from_query(
        parse_qs("&".join(f"{k}={v}" for k, v in spec.to_query().items()), keep_blank_values=True)
    )
    assert (again, warnings) == (spec, [])


def _bad_cli_args(spec_cls) -> list[list[str]]:
    """Malformed flags for one command: per field, values its type cannot hold."""
    out = []
    for name, info in spec_cls.field_info().items():
        flag = "--" + name.replace("_", "-")
        kind = info["kind"]
        if kind is bool:
            out += [[f"{flag}=maybe"]]
        elif kind in (int, float):
            out += [[flag, "abc"], [flag, "nan"], [flag, "1e309"], [flag, "-1e12"]]
        elif kind is tuple:
            out += [[flag, ","], [flag, "zz,,1"]]
        elif info["choices"]:
            out += [[flag, "42"]]
        out += [[flag, "9" * 10_000]]
    first = "--" + next(iter(spec_cls.field_info())).replace("_", "-")
    return out + [["--no-such-flag", "1"], [first], ["--json"], ["stray-positional"]]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_malformed_args_exit_2_with_one_line(command, capsys):
    for args in _bad_cli_args(COMMANDS[command]):
        rc = cli.main([command, *args])
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert rc == 2, (args[:1], rc)
        assert out == "", (args[:1], out[:200])
        assert len(lines) == 1 and lines[0].startswith("error:"), (args[:1], err[:300])


def test_cli_unknown_command_and_no_command(capsys):
    assert cli.main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-command" in err[0]
    assert cli.main([]) == 2  # prints the help


def _strict_json(text: str):
    def reject(token):
        raise ValueError(f"non-JSON number {token} in the CLI output")

    return json.loads(text, parse_constant=reject)


def test_diverging_run_reports_the_step_and_json_has_no_nan(capsys):
    rc = cli.main(["activations", "--lr", "100", "--steps", "40", "--probe-every", "10", "--n-samples", "400"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary = _strict_json(out)  # NaN/Infinity would fail here
    diverged = {m: s for m, s in summary["diverged_at"].items() if s is not None}
    assert diverged, summary["diverged_at"]
    assert all(isinstance(s, int) and 1 <= s <= 40 for s in diverged.values()), diverged
    for model in diverged:  # the diverged model's numbers are null or finite, never NaN
        loss = summary[model]["final_loss"]
        assert loss is None or math.isfinite(loss)


# --- source scan --------------------------------------------------------------------------------
DANGEROUS_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "yaml"}
DANGEROUS_BUILTINS = {"eval", "exec", "compile", "__import__"}


def _sources() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "normviz").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py"))]
    return [f for f in files if f.exists()]


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _findings(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names if a.name.split(".")[0] in DANGEROUS_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in DANGEROUS_MODULES:
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if isinstance(node.func, ast.Name) and node.func.id in DANGEROUS_BUILTINS:
                found.append(f"{where} calls {node.func.id}()")
            if name.endswith("torch.load") and not _is_true(_kw(node, "weights_only")):
                found.append(f"{where} torch.load without weights_only=True")
            if name in ("np.load", "numpy.load") and _is_true(_kw(node, "allow_pickle")):
                found.append(f"{where} np.load with allow_pickle=True")
            if (v := _kw(node, "unsafe_allow_html")) is not None and not (isinstance(v, ast.Constant) and not v.value):
                found.append(f"{where} unsafe_allow_html")
            if name in ("st.html", "components.html") or name.endswith("components.v1.html"):
                found.append(f"{where} renders raw HTML with {name}")
            if name in ("os.system", "os.popen") or _is_true(_kw(node, "shell")):
                found.append(f"{where} runs a shell: {name}")
            if name.endswith("read_pickle"):
                found.append(f"{where} {name}")
    return found


def test_source_scan_finds_no_dangerous_sinks():
    files = _sources()
    assert len(files) > 10
    findings = [f for path in files for f in _findings(path)]
    assert not findings, "\n".join(findings)


def test_source_scan_catches_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "\n".join(
            [
                "import pickle",
                "import torch, streamlit as st",
                "eval('1')",
                "exec('x=1')",
                "torch.load('m.pt')",
                "torch.load('m.pt', weights_only=False)",
                "st.markdown('<b>', unsafe_allow_html=True)",
                "import numpy as np",
                "np.load('a.npz', allow_pickle=True)",
                "model.eval()",
                "torch.load('m', weights_only=True)",
                "",
            ]
        )
    )
    found = _findings(bad, tmp_path)
    lines = sorted(int(f.split()[0].split(":")[1]) for f in found)
    assert lines == [1, 3, 4, 5, 6, 7, 9], found  # model.eval() and weights_only=True pass


def test_spec_base_rejects_non_finite_and_huge_values():
    """The base Spec's checks that every page relies on."""
    with pytest.raises(ValueError):
        Spec.parse_field("seed", "nan")
    with pytest.raises(ValueError):
        Spec.parse_field("seed", "9" * 300)


# --- the page layer: URL values that fit the defaults but not the preset named in the same URL ------
_PRESET_PAGE = """
from dataclasses import dataclass
from normviz import ui
from normviz.config import Preset, Spec, SpecError, param

@dataclass(frozen=True)
class PairSpec(Spec):
    lo: int = param(0, "lower", lo=0, hi=10)
    hi: int = param(5, "upper", lo=0, hi=10)

    def validate(self):
        super().validate()
        if self.lo > self.hi:
            raise SpecError(f"lo: must not exceed hi ({self.hi}), got {self.lo}")

spec = ui.spec_controls(PairSpec, "pair", presets={"narrow": Preset({"lo": 0, "hi": 1}, "a narrow pair")})
"""


def _preset_conflicts() -> list[tuple[str, str, str, str]]:
    """(view, preset, field, value) where the value fits the defaults but not that preset's settings."""
    found = []
    for view in views.VIEWS:
        cls, presets = view.spec_cls, view.presets
        for name, preset in presets.items():
            start = preset.spec(cls)
            for other in presets.values():
                for key, value in other.changes.items():
                    if key in preset.changes:
                        continue
                    try:
                        cls(**{key: value})
                        start.replace(**{key: value})
                    except ValueError:
                        if (view.name, name, key) not in {f[:3] for f in found}:
                            found.append((view.name, name, key, cls(**{key: value}).to_query()[key]))
    return found[:6]


def test_url_value_conflicting_with_the_url_preset_falls_back_with_a_warning():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(_PRESET_PAGE, default_timeout=60)
    at.query_params["preset"] = "narrow"
    at.query_params["lo"] = "3"  # fits the defaults (hi 5), not the preset (hi 1)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert names_key([w.value for w in at.warning], "lo"), [w.value for w in at.warning]
    conflicts = _preset_conflicts()
    assert conflicts  # the real presets have some
    for view, preset, key, value in conflicts:  # the same through the real presets
        at = AppTest.from_string(
            f"from normviz import ui, views\nv = views.view({view!r})\n"
            "ui.spec_controls(v.spec_cls, 'p', presets=v.presets)",
            default_timeout=60,
        )
        at.query_params["preset"], at.query_params[key] = preset, value
        at.run()
        assert not at.exception, (view, preset, key, [e.value for e in at.exception])
        assert names_key([w.value for w in at.warning], key), (view, preset, key, [w.value for w in at.warning])


@pytest.mark.parametrize("path", ["/dev/null", "/nonexistent/x.npz", "/etc/passwd", "/", "%00"])
def test_a_data_path_in_the_url_is_ignored_and_the_cli_path_fails_with_a_message(path):
    """data_path is the command line's only (issue 19): a URL naming it gets a warning and the defaults; the
    CLI's path is refused with a DataError/SpecError (one line), never another exception (a traceback)."""
    from normviz.data import DataError, load_checked

    spec_cls = next(
        c
        for c in spec_classes()
        if "data_path" in c.field_info() and "mnist-file" in (c.field_info()["dataset"]["choices"] or ())
    )
    spec, warnings = spec_cls.from_query({"dataset": ["mnist-file"], "data_path": [path]})
    assert spec == spec_cls() and names_key(warnings, "data_path"), warnings
    with pytest.raises((DataError, ValueError)):
        load_checked(spec_cls(dataset="mnist-file", data_path=path))


def test_a_widget_whose_state_streamlit_dropped_is_seeded_from_the_url_not_its_minimum():
    """Streamlit drops a widget's state when a run ends without drawing it (e.g. interrupted by a rerun): the
    widget must come back with the settings the URL still holds, not at its minimum."""
    from streamlit.testing.v1 import AppTest

    dropping = "import streamlit as st\nif st.session_state.pop('drop', False):\n    del st.session_state['pair.hi']\n"
    at = AppTest.from_string(dropping + _PRESET_PAGE, default_timeout=60)
    at.query_params["hi"] = "7"
    at.run()
    at.slider(key="pair.lo").set_value(4).run()
    assert (at.query_params["lo"], at.query_params["hi"]) == ("4", "7")
    at.session_state["drop"] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert (at.slider(key="pair.lo").value, at.slider(key="pair.hi").value) == (4, 7)
    assert at.query_params["hi"] == "7"
