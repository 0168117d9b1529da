"""BN by hand: closed-form numbers against torch.nn.BatchNorm1d and autograd, the edge cases, the CLI."""

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch

from normviz.cli import main
from normviz.config import SpecError
from normviz.experiments import by_hand as bh
from normviz.lessons import by_hand as lesson
from normviz.runs import final

torch.set_num_threads(1)


def fmt(m) -> str:
    return json.dumps(np.asarray(m).tolist())


def random_spec(seed: int, convention: str, var_estimator: str) -> bh.ByHandSpec:
    rng = np.random.default_rng(seed)
    b, c = int(rng.integers(2, 9)), int(rng.integers(1, 6))
    vec = lambda lo, hi: ",".join(f"{v:.6f}" for v in rng.uniform(lo, hi, c))
    return bh.ByHandSpec(
        x=fmt(np.round(rng.normal(rng.uniform(-3, 3, c), rng.uniform(0.2, 4, c), (b, c)), 4)),
        gamma=vec(-2, 2),
        beta=vec(-1, 1),
        running_mean=vec(-1, 1),
        running_var=vec(0.1, 3),
        dy=fmt(np.round(rng.normal(size=(b, c)), 4)),
        x_new=vec(-3, 3),
        eps=float(rng.choice([1e-5, 1e-3, 0.1])),
        momentum=float(rng.uniform(0.01, 0.99)),
        convention=convention,
        var_estimator=var_estimator,
    )


def torch_reference(spec: bh.ByHandSpec):
    """The step through nn.BatchNorm1d (float64) built here, independently of the module under test."""
    a = {k: torch.tensor(v, dtype=torch.float64) for k, v in spec.arrays().items()}
    m = spec.momentum if spec.convention == "pytorch" else 1 - spec.momentum
    bn = torch.nn.BatchNorm1d(a["x"].shape[1], eps=spec.eps, momentum=m, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(a["gamma"]), bn.bias.copy_(a["beta"])
        bn.running_mean.copy_(a["running_mean"]), bn.running_var.copy_(a["running_var"])
    x = a["x"].clone().requires_grad_(True)
    y = bn(x)
    y.backward(a["dy"])
    rv = bn.running_var.clone()
    if spec.var_estimator == "biased":  # undo torch's B/(B-1): the batch variance it folded in, times (B-1)/B
        b = x.shape[0]
        rv = (1 - m) * a["running_var"] + (rv - (1 - m) * a["running_var"]) * (b - 1) / b
    bn.eval()
    with torch.no_grad():
        bn.running_var.copy_(rv)
        y_new = bn(a["x_new"][None])[0]
    return {
        k: v.detach().numpy()
        for k, v in dict(
            y=y,
            running_mean=bn.running_mean,
            running_var=rv,
            y_new=y_new,
            dx=x.grad,
            dgamma=bn.weight.grad,
            dbeta=bn.bias.grad,
        ).items()
    }


@pytest.mark.parametrize("convention", ["pytorch", "keras"])
@pytest.mark.parametrize("var_estimator", ["unbiased", "biased"])
def test_hand_equals_batchnorm1d_on_random_batches(convention, var_estimator):
    for seed in range(6):
        spec = random_spec(seed, convention, var_estimator)
        r = final(bh.run(spec))
        ref = torch_reference(spec)
        for name in ("y", "running_mean", "running_var", "y_new", "dx", "dgamma", "dbeta"):
            np.testing.assert_allclose(r.hand[name], ref[name], rtol=0, atol=1e-6, err_msg=f"{name}, seed {seed}")
            assert r.diff(name) < 1e-10, name  # the module's own float64 torch check agrees to rounding
            assert r.diff(name, "float32") < 1e-3, name
        # the batch statistics of the training pass, in closed form
        x = spec.arrays()["x"]
        np.testing.assert_allclose(r.hand["var"], x.var(0), atol=1e-12)
        np.testing.assert_allclose(r.hand["var_unbiased"], x.var(0, ddof=1), atol=1e-12)


def test_keras_momentum_is_one_minus_pytorch():
    pt = final(bh.run(bh.ByHandSpec(momentum=0.1)))
    keras = final(bh.run(bh.ByHandSpec(momentum=0.9, convention="keras")))
    assert keras.momentum == pytest.approx(0.1)
    np.testing.assert_allclose(keras.hand["running_mean"], pt.hand["running_mean"], atol=1e-12)
    np.testing.assert_allclose(keras.hand["running_var"], pt.hand["running_var"], atol=1e-12)


def test_b2_gives_plus_minus_one():
    r = final(bh.run(bh.ByHandSpec(x="[[1,10,-3],[3,4,5]]", eps=1e-8)))
    np.testing.assert_allclose(r.hand["x_hat"], [[-1, 1, -1], [1, -1, 1]], atol=1e-8)
    d = np.array([1, 3, 4])  # half the gaps: x_hat = ±d/sqrt(d²+eps) exactly
    np.testing.assert_allclose(np.abs(r.hand["x_hat"][0]), d / np.sqrt(d**2 + 1e-8), rtol=1e-14)
    assert any("B = 2" in title for title, *_ in lesson.notes(r))


def test_constant_feature_eps_keeps_it_finite_and_scales_its_gradient():
    dy = np.array([[1, 0, 1], [0, 2, -1], [1, 0, 2], [2, 1, 0.5]])
    spec = bh.ByHandSpec(x="[[1,2,3],[3,-1,3],[5,0,3],[7,3,3]]", gamma="1,1,2", beta="0,0,0.5", dy=fmt(dy))
    r = final(bh.run(spec))
    assert r.hand["var"][2] == 0 and np.all(r.hand["x_hat"][:, 2] == 0) and np.all(r.hand["y"][:, 2] == 0.5)
    np.testing.assert_allclose(r.hand["dx"][:, 2], 2 * (dy[:, 2] - dy[:, 2].mean()) / math.sqrt(1e-5), rtol=1e-12)
    assert r.diff("y") < 1e-12 and r.diff("dx") < 1e-9  # torch agrees
    with np.errstate(invalid="ignore"):
        assert np.isnan(0.0 / np.sqrt(r.hand["var"][2]))  # without eps: 0/0
    assert any("Constant feature (3)" in title for title, *_ in lesson.notes(r))
    assert r.focus() == 2


def test_backward_closed_form_equals_autograd_of_the_forward_formula():
    rng = np.random.default_rng(3)
    x, dy, gamma = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.normal(size=4)
    r = final(bh.run(bh.ByHandSpec(x=fmt(x), dy=fmt(dy), gamma=",".join(map(str, gamma)), eps=1e-3)))
    xt, g = torch.tensor(x, requires_grad=True), torch.tensor(gamma, requires_grad=True)
    beta = torch.zeros(4, requires_grad=True)
    y = g * (xt - xt.mean(0)) / torch.sqrt(xt.var(0, correction=0) + 1e-3) + beta
    y.backward(torch.tensor(dy))
    np.testing.assert_allclose(r.hand["dx"], xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(r.hand["dgamma"], g.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(r.hand["dbeta"], beta.grad.numpy(), atol=1e-12)


def test_uniform_upstream_gradient_gives_zero_dx():
    r = final(bh.run(bh.ByHandSpec()))  # dy = 1 everywhere
    assert np.abs(r.hand["dx"]).max() < 1e-12
    assert any("dL/dx = 0" in title for title, *_ in lesson.notes(r))


def test_batch_of_one_is_a_lesson_not_a_crash():
    r = final(bh.run(bh.ByHandSpec(x="[[1,2,3]]", beta="0.5")))
    assert r.torch_error.startswith(bh.TORCH_REFUSAL) and r.torch64 is None and r.diff("y") is None
    with pytest.raises(ValueError, match=bh.TORCH_REFUSAL):  # the message is torch's own
        torch.nn.BatchNorm1d(3)(torch.ones(1, 3))
    assert np.all(r.hand["x_hat"] == 0) and np.all(r.hand["y"] == 0.5) and np.all(r.hand["dx"] == 0)
    assert np.isnan(r.hand["running_var"]).all()  # B/(B-1) = 1/0
    np.testing.assert_allclose(r.hand["running_var_biased"], 0.9)
    assert any(r.torch_error in text for _, text, _ in lesson.notes(r))


def test_huge_eps_shrinks_x_hat():
    r = final(bh.run(bh.ByHandSpec(eps=100.0)))
    expected = np.sqrt(r.hand["var"] / (r.hand["var"] + 100))
    np.testing.assert_allclose(r.hand["x_hat"].std(0), expected, rtol=1e-12)
    assert expected.max() < 0.25 and any("ε is not small" in t for t, *_ in lesson.notes(r))


def test_presets_show_what_they_say():
    results = {name: final(bh.run(p.spec(bh.ByHandSpec))) for name, p in lesson.PRESETS.items()}
    const = results["a constant feature"]
    assert np.all(const.hand["x_hat"][:, 2] == 0)
    dy = const.inputs["dy"][:, 2]
    np.testing.assert_allclose(const.hand["dx"][:, 2], (dy - dy.mean()) * 316.227766, rtol=1e-6)  # "about 316 x"
    assert np.abs(np.abs(results["B = 2 gives ±1"].hand["x_hat"]) - 1).max() < 1e-5
    assert results["B = 1: torch refuses"].torch_error.startswith(bh.TORCH_REFUSAL)
    huge = results["huge ε"]
    x = huge.inputs["x"]
    np.testing.assert_allclose(huge.hand["x_hat"], (x - x.mean(0)) / 10, rtol=0.05)  # "about (x − μ)/10"
    assert huge.hand["x_hat"].std(0).max() < 0.25
    keras = results["Keras defaults (momentum 0.99, biased var)"]
    assert keras.momentum == pytest.approx(0.01) and keras.diff("y") < 1e-12
    np.testing.assert_allclose(keras.hand["running_var"], 0.99 + 0.01 * keras.hand["var"])


def run_cli(*args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["by_hand", *args])
    return code, err.getvalue()


def test_cli_json(tmp_path):
    path = tmp_path / "out.json"
    code, _ = run_cli("--x", "[[1,2,3],[4,5,6]]", "--eps", "1e-5", "--momentum", "0.1", "--json", str(path))
    out = json.loads(path.read_text())
    assert code == 0 and set(out) == {"mean", "var", "x_hat", "y", "running_mean", "running_var"}
    assert out["mean"] == [2.5, 3.5, 4.5] and out["var"] == [2.25] * 3
    np.testing.assert_allclose(out["running_mean"], [0.25, 0.35, 0.45])
    np.testing.assert_allclose(out["running_var"], [0.9 + 0.1 * 4.5] * 3)  # unbiased: 2.25 * 2/1
    bn = torch.nn.BatchNorm1d(3, dtype=torch.float64)
    y = bn(torch.tensor([[1.0, 2, 3], [4, 5, 6]], dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(out["y"], y, atol=1e-12)
    np.testing.assert_allclose(out["running_var"], bn.running_var.numpy(), atol=1e-12)
    code, _ = run_cli(
        "--x",
        "[[1,2],[3,5]]",
        "--convention",
        "keras",
        "--momentum",
        "0.99",
        "--gamma",
        "2,3",
        "--beta",
        "[1, 1]",
        "--running-mean",
        "1,1",
        "--running-var",
        "2",
        "--json",
        str(path),
    )
    out = json.loads(path.read_text())
    np.testing.assert_allclose(out["running_mean"], [0.99 + 0.01 * 2, 0.99 + 0.01 * 3.5])
    np.testing.assert_allclose(out["y"], [[-2 + 1, -3 + 1], [2 + 1, 3 + 1]], atol=1e-4)


MALFORMED = [
    ("[[1,2,3],[4,5]]", "different lengths"),
    ('[[1,"a",3]]', "not a number"),
    ("[]", "empty"),
    ("", "empty"),
    ("[[]]", "empty"),
    ("[[1,2", "not valid JSON"),
    ("[[NaN,1]]", "not finite"),
    ("[1,2,3]", "flat list"),
    ("[[true]]", "not a number"),
]


@pytest.mark.parametrize("x, says", MALFORMED)
def test_cli_rejects_malformed_x_with_one_line(x, says):
    code, err = run_cli("--x", x)
    assert code == 2 and err.startswith("error: x: ") and says in err and err.count("\n") == 1


def test_other_settings_are_validated():
    with pytest.raises(SpecError, match="gamma: has 2 values but the batch has 3 features"):
        bh.ByHandSpec(gamma="1,2")
    with pytest.raises(SpecError, match="running_var: a variance cannot be negative"):
        bh.ByHandSpec(running_var="-1")
    with pytest.raises(SpecError, match="dy: is 2 x 3 but the batch x is 4 x 3"):
        bh.ByHandSpec(dy="[[1,2,3],[4,5,6]]")
    with pytest.raises(SpecError, match="beta: value 2 is not a number"):
        bh.ByHandSpec(beta="1,b,3")


def test_matrix_round_trips_through_the_url():
    spec = bh.randomise(bh.resize(bh.ByHandSpec(), 12, 6))  # longer than the generic 200-character URL limit
    assert len(spec.x) > 200
    again, warnings = bh.ByHandSpec.from_query(spec.to_query())
    assert again == spec and not warnings
    assert bh.ByHandSpec(x="[[1.0, 2], [3, 4.50]]").x == "[[1,2],[3,4.5]]"  # one spelling per batch


def test_page_edits():
    spec = bh.ByHandSpec()
    edited = bh.apply_edits(spec, "x", {1: {"feature 2": 9.0, "feature 3": None}})
    assert edited.arrays()["x"][1].tolist() == [3, 9, 2]
    edited = bh.apply_edits(spec, "params", {0: {"feature 1": 2.0}, 3: {"feature 3": 4.0}})
    assert edited.gamma == "2,1,1" and edited.running_var == "1,1,4"
    resized = bh.resize(edited, 2, 4)
    assert resized.arrays()["x"].shape == (2, 4) and resized.gamma == "2,1,1,1"
    assert np.ptp(bh.make_constant(spec, 1).arrays()["x"][:, 1]) == 0
    assert bh.randomise(spec).seed == spec.seed + 1 and bh.randomise(spec).x != spec.x


@pytest.mark.parametrize("preset", [None, "B = 1: torch refuses", "Keras defaults (momentum 0.99, biased var)"])
def test_snippet_runs_and_agrees(preset):
    spec = lesson.PRESETS[preset].spec(bh.ByHandSpec) if preset else bh.ByHandSpec()
    code = lesson.pytorch_snippet(spec)
    assert len(code.splitlines()) < 40
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "snippet", "exec"), {})
    text = out.getvalue()
    if preset and "B = 1" in preset:
        assert "torch refuses: " + bh.TORCH_REFUSAL in text
    else:
        diffs = [float(line.split("=")[-1]) for line in text.splitlines() if line.startswith("max |")]
        assert len(diffs) == 2 and max(diffs) < 1e-12


def test_page_buttons_and_batch_size_controls():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120).run()
    at.switch_page("pages/by_hand.py").run()
    [randomise] = [b for b in at.button if b.label == "Randomise"]
    randomise.click().run()
    assert not at.exception and at.query_params["seed"] == "1"
    assert at.query_params["x"] == bh.ByHandSpec(x=bh._format_matrix(bh.random_batch(4, 3, 1))).x
    [b_input] = [n for n in at.number_input if n.label == "B (samples)"]
    b_input.set_value(1).run()
    assert not at.exception and any(bh.TORCH_REFUSAL in w.value for w in at.warning)
