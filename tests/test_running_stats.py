"""The Running statistics engine: tracking against torch, the two conventions, the physics, presets, CLI."""

import contextlib
import functools
import io
import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from normviz.cli import main
from normviz.config import SpecError
from normviz.data import load_checked
from normviz.experiments import running_stats as rs
from normviz.experiments.running_stats import KERAS_DEFAULT, RunningStatsSpec
from normviz.figures import running_stats as figs
from normviz.lessons import running_stats as lesson
from normviz.lessons.running_stats import PRESETS
from normviz.runs import final

torch.set_num_threads(1)
SMALL = dict(depth=2, width=12, batch_size=16, steps=40, pop_every=10)


@functools.cache
def result(spec: RunningStatsSpec):
    return final(rs.run(spec))


@functools.cache
def preset(name):
    return final(rs.run(PRESETS[name].spec(RunningStatsSpec)))


def errors(res, population="precise"):
    """Channel-averaged errors over all layers: (T, R) for the mean and the var."""
    return res.err_mean[population].mean(1), res.err_var[population].mean(1)


def tail(err, share=0.25):
    """Mean over the last `share` of the pop steps: less noisy than the very last one."""
    return err[-max(1, int(len(err) * share)) :].mean(0)


# --- tracking equals torch ------------------------------------------------------------------------


@pytest.mark.parametrize("norm_place", ["before", "after"])
def test_tracked_running_stats_equal_torch_batchnorm1d_on_the_same_batches(norm_place):
    spec = RunningStatsSpec(momenta=(0.01, 0.1, 0.5), cma=True, norm_place=norm_place, **SMALL)
    data = load_checked(spec)
    gen = torch.Generator().manual_seed(0)
    model = rs.build_model(spec, data.n_features, data.n_classes, gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    refs = [[nn.BatchNorm1d(spec.width, momentum=m) for m in spec.row_momenta()] for _ in range(spec.depth)]
    key, seen = ("linear" if norm_place == "before" else "act"), []
    for _ in range(25):
        idx = torch.randint(0, len(data.x_train), (spec.batch_size,), generator=gen)
        seen.clear()
        logits = model(data.x_train[idx], "train", record=lambda layer, acts: seen.append(acts[key][0].detach()))
        for layer, h in enumerate(seen):
            for ref in refs[layer]:
                ref(h)  # the very batch our BN normalised, into torch's BatchNorm1d(momentum=m or None)
        loss = nn.functional.cross_entropy(logits[0], data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for layer, stats in enumerate(model.stats):
        for row, ref in enumerate(refs[layer]):
            assert_close(stats.mean[row, 0], ref.running_mean, atol=1e-6, rtol=1e-5)
            assert_close(stats.var[row, 0], ref.running_var, atol=1e-6, rtol=1e-5)


def standardized(b, c, seed=0):
    """(b, c) columns with mean exactly 0 and biased variance exactly 1."""
    z = torch.randn(b, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    return z / z.pow(2).mean(0).sqrt()


def test_recorded_trajectories_replay_through_torch_batchnorm1d():
    """Every recorded step of a run, replayed as batches with the recorded statistics, gives torch's buffers."""
    spec = RunningStatsSpec(momenta=(0.02, 0.3), cma=True, **SMALL)
    res = result(spec)
    b = spec.batch_size
    z = standardized(b, res.batch_mean.shape[-1])
    for layer in range(spec.depth):
        refs = [nn.BatchNorm1d(z.shape[1], momentum=m, dtype=torch.float64) for m in spec.row_momenta()]
        for t in range(1, len(res.trace_steps)):
            mean = torch.from_numpy(res.batch_mean[t, layer]).double()
            biased = torch.from_numpy(res.batch_var[t, layer]).double() * (b - 1) / b  # recorded unbiased
            for ref in refs:
                ref(mean + biased.sqrt() * z)
            for row, ref in enumerate(refs):
                assert_close(
                    torch.from_numpy(res.running_mean[t, layer, row]).double(), ref.running_mean, atol=2e-5, rtol=1e-4
                )
                assert_close(
                    torch.from_numpy(res.running_var[t, layer, row]).double(), ref.running_var, atol=2e-5, rtol=1e-4
                )


# --- conventions and validation -------------------------------------------------------------------


def test_keras_convention_translates_with_one_minus_m():
    spec = RunningStatsSpec(convention="keras", momenta=(0.99, 0.9, 0.0))
    assert spec.pytorch_momenta == (0.01, 0.1, 1.0)
    assert spec.row_labels()[:2] == ["Keras 0.99 (PyTorch 0.01)", "Keras 0.9 (PyTorch 0.1)"]
    assert spec.row_keys() == ["0.99", "0.9", "0", "cma"]
    assert RunningStatsSpec(convention="keras").momenta == KERAS_DEFAULT == (0.999, 0.99, 0.9, 0.5)
    assert RunningStatsSpec(convention="keras").pytorch_momenta == RunningStatsSpec().momenta
    assert rs.translated_text("0.99,0.9") == "0.01,0.1"
    assert rs.translated_text("not a number") == "not a number"


@pytest.mark.parametrize(
    "changes",
    [
        dict(momenta=(0.0, 0.1)),
        dict(convention="keras", momenta=(0.9, 1.0)),
        dict(momenta=(1.5,)),
        dict(momenta=(0.1, 0.1)),
        dict(convention="tf"),
    ],
)
def test_out_of_range_momenta_are_refused_naming_the_field(changes):
    with pytest.raises(SpecError, match="momenta|convention"):
        RunningStatsSpec(**changes)


def test_keras_run_equals_the_pytorch_run_of_the_translated_momenta():
    keras = preset("Are PyTorch 0.1 and Keras 0.99 the same thing?")
    spec = PRESETS["Are PyTorch 0.1 and Keras 0.99 the same thing?"].spec(RunningStatsSpec)
    pytorch = result(spec.replace(convention="pytorch", momenta=(0.01, 0.1, 0.9)))
    np.testing.assert_array_equal(keras.running_var, pytorch.running_var)
    np.testing.assert_array_equal(keras.eval_acc, pytorch.eval_acc)
    # its lesson: Keras 0.99 (PyTorch 0.01) lags early on; Keras 0.1 (PyTorch 0.9) is the noisiest
    err_mean, err_var = errors(keras)
    quarter = len(keras.pop_steps) // 4
    assert err_mean[quarter, 0] > 3 * err_mean[quarter, 1]
    assert tail(err_var)[2] > 2 * tail(err_var)[1]


# --- the physics ----------------------------------------------------------------------------------


def test_frozen_network_estimates_approach_the_population_and_smaller_momentum_wins():
    res = preset("frozen network: only noise")
    assert res.spec.lr == 0 and res.spec.momenta == (0.01, 0.1, 0.5)
    for err in errors(res):
        end = tail(err)
        assert end[0] < end[1] < end[2], end  # 0.01 < 0.1 < 0.5 once the start-up has passed
        assert end[0] < 0.2 * err[0, 0]  # the estimate approached the population from its start value
        quarter = len(err) // 4
        assert err[quarter, 3] < err[quarter, 0]  # the cumulative average is at its floor long before 0.01


def test_why_unbiased_the_biased_running_var_is_1_over_n_off_in_layer_1_and_chart_b_barely_moves():
    """WHY_UNBIASED's claims, on the preset it names with the estimator switched to biased."""
    text = " ".join(lesson.WHY_UNBIASED.split())
    assert "*frozen network: only noise*" in text and "about 1/n instead of near 0" in text
    unbiased = preset("frozen network: only noise")
    biased = result(PRESETS["frozen network: only noise"].spec(RunningStatsSpec).replace(var_estimator="biased"))
    n, cma = unbiased.spec.batch_size, len(unbiased.labels) - 1
    layer1 = [tail(r.err_var["eval"][:, 0])[cma] for r in (unbiased, biased)]  # (T, L, R) -> layer 1, CMA row
    assert layer1[0] < 0.2 / n and abs(layer1[1] - 1 / n) < 0.2 / n
    chart_b = [tail(errors(r, "eval")[1])[cma] for r in (unbiased, biased)]
    assert abs(chart_b[1] - chart_b[0]) < 0.5 / n < chart_b[0]  # the deeper layers' floor exceeds 1/n
    assert abs(tail(errors(unbiased)[1]) - tail(errors(biased)[1])).max() < 0.05 / n  # population (a): no change


def test_training_network_shows_the_lag_of_a_tiny_momentum():
    res = preset("tiny momentum lags")
    assert res.spec.lr > 0 and res.spec.bias_correction  # no start-up bias: what is left is lag
    for err in errors(res):
        end = tail(err, 0.5)
        assert end[0] > 2 * end[2], end  # momentum 0.001 vs 0.1
        assert end[3] > 2 * end[2], end  # the cumulative average lags as well
    pv = res.pop_var["precise"]  # (T, L, channels)
    growth = pv[-1].mean(-1) / pv[0].mean(-1)  # per layer
    assert np.all((6 < growth) & (growth < 13))  # "rises 7- to 12-fold": the population moved


def test_bias_correction_removes_the_start_up_bias():
    base = dict(lr=0.0, momenta=(0.01,), cma=False, running_init="zeros", steps=30, pop_every=5, depth=2, width=16)
    plain, corrected = result(RunningStatsSpec(**base)), result(RunningStatsSpec(**base, bias_correction=True))
    for e_plain, e_corr in zip(errors(plain), errors(corrected)):
        assert (e_corr[2:, 0] < 0.2 * e_plain[2:, 0]).all()  # from step 10 on
    # zeros init: the plain EMA's var is (1 - 0.99^t) of the truth
    assert errors(plain)[1][-1, 0] == pytest.approx(0.99**30, abs=0.05)


def test_running_var_starting_at_1_breaks_eval_mode_until_it_fades():
    res = preset("running var starts at 1")
    assert res.pop_var["precise"][0].max() < 0.01  # "the true variance of each BN input starts below 0.01"
    err_mean, err_var = errors(res)
    assert err_var[-1, 0] > 10  # momentum 0.001 still carries most of its start value 1
    assert res.eval_acc[-1, 0] < 0.5 < 0.9 < res.train_acc[-1]
    assert err_var[-1, 3] < 1 and res.eval_acc[-1, 3] > 0.9  # the cumulative average forgot the start


def test_precise_bn_recalibration_fixes_eval_accuracy():
    res = preset("PreciseBN fixes it")
    p = res.precise
    assert p["batches"] == 20 and len(p["before"]) == len(res.labels)
    assert p["before"][0] < 0.5
    assert p["after"] > p["before"][0] + 0.4
    assert abs(p["after"] - res.train_acc[-1]) < 0.03
    assert p["err_mean"] < 0.05 and p["err_var"] < 0.1


def test_ramp_schedule_formula_and_that_it_settles():
    assert rs.schedule_momenta((0.1, 0.5), 1, 11, "ramp") == pytest.approx((0.1, 0.5))
    assert rs.schedule_momenta((0.1, 0.5), 6, 11, "ramp") == pytest.approx((0.055, 0.275))
    assert rs.schedule_momenta((0.1, 0.5), 11, 11, "ramp") == pytest.approx((0.01, 0.05))
    assert rs.schedule_momenta((0.1,), 7, 11, "constant") == (0.1,)
    base = dict(lr=0.0, momenta=(0.1, 0.5), cma=False, steps=200, pop_every=10, depth=2, width=16)
    constant, ramp = result(RunningStatsSpec(**base)), result(RunningStatsSpec(**base, schedule="ramp"))
    for e_const, e_ramp in zip(errors(constant), errors(ramp)):
        assert (tail(e_ramp) < 0.7 * tail(e_const)).all()


def test_divergence_stops_the_run_and_is_reported_not_drawn_as_nan():
    res = result(RunningStatsSpec(lr=10.0, steps=100, depth=2, width=16, norm_place="after", scaling="none"))
    assert res.done and res.diverged_at[0] is not None and res.steps_done == res.diverged_at[0] < 100
    assert res.precise is None and res.summary()["diverged_at"] == res.diverged_at[0]
    assert np.isfinite(res.err_mean["precise"]).all() and np.isfinite(res.running_var).all()


# --- the population definitions -------------------------------------------------------------------


@pytest.mark.parametrize("norm_place", ["before", "after"])
def test_population_definitions(norm_place):
    spec = RunningStatsSpec(norm_place=norm_place, **SMALL)
    data = load_checked(spec)
    model = rs.build_model(spec, data.n_features, data.n_classes, torch.Generator().manual_seed(0))
    x = data.x_train
    batches = rs.population_batches(len(x), 16, 0)
    # (a): the batched forward equals one probe-mode forward per batch, averaged with equal weights
    mean, var = rs.batch_average(model, x, batches, "unbiased")
    per_batch = [rs.probe_batches(model, x[idx].unsqueeze(0))[0] for idx in batches]
    key, seen = ("linear" if norm_place == "before" else "act"), []
    for b, idx in enumerate(batches[:3]):
        seen.clear()
        model(x[idx], "probe", record=lambda layer, acts: seen.append(acts[key][0]))
        for layer, h in enumerate(seen):
            assert_close(per_batch[b][layer][0], h, atol=1e-4, rtol=1e-4)
    for layer in range(spec.depth):
        inputs = [p[layer][0] for p in per_batch]  # (B, C) per batch
        assert_close(mean[layer], torch.stack([h.mean(0) for h in inputs]).mean(0), atol=1e-6, rtol=1e-5)
        assert_close(var[layer], torch.stack([h.var(0) for h in inputs]).mean(0), atol=1e-6, rtol=1e-5)
    # (b): the first layer's input over the whole set
    pop_mean, pop_var = rs.eval_population(model, x)
    first = x @ model.weights[0][0] + model.biases[0][0]
    first = first if norm_place == "before" else torch.relu(first)
    assert_close(pop_mean[0], first.mean(0), atol=1e-5, rtol=1e-5)
    assert_close(pop_var[0], first.var(0, unbiased=False), atol=1e-5, rtol=1e-5)


def test_errors_are_the_defined_channel_averages():
    rm, rv = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[2.0, 1.0]]])  # (L=1, R=1, C=2)
    pm, pv = torch.tensor([[0.0, 0.0]]), torch.tensor([[4.0, 1.0]])
    err_mean, err_var = rs.estimate_errors(rm, rv, pm, pv, eps=0.0)
    assert err_mean.item() == pytest.approx((0.5 + 0.0) / 2)
    assert err_var.item() == pytest.approx((0.5 + 0.0) / 2)


# --- CLI, figures, snippet -------------------------------------------------------------------------


def test_cli_writes_the_documented_json(tmp_path):
    path = tmp_path / "m.json"
    code = main(
        [
            "running_stats",
            "--momenta",
            "0.01,0.1,0.5",
            "--steps",
            "30",
            "--depth",
            "2",
            "--width",
            "12",
            "--pop-every",
            "10",
            "--lr",
            "0",
            "--json",
            str(path),
        ]
    )
    assert code == 0
    out = json.loads(path.read_text())
    assert out["convention"] == "pytorch" and out["momenta"] == [0.01, 0.1, 0.5] and out["cma"] is True
    assert out["steps"] == [0, 10, 20, 30]
    assert set(out["error"]) == set(out["eval_acc"]) == {"0.01", "0.1", "0.5", "cma"}
    assert all(len(v) == 4 for e in out["error"].values() for v in (e["mean"], e["var"]))
    assert len(out["train_acc"]) == 4 and all(len(v) == 4 for v in out["eval_acc"].values())


def test_cli_keys_keep_the_keras_values_as_given(tmp_path):
    path = tmp_path / "k.json"
    assert (
        main(
            [
                "running_stats",
                "--convention",
                "keras",
                "--momenta",
                "0.99,0.9",
                "--no-cma",
                "--steps",
                "10",
                "--depth",
                "1",
                "--width",
                "8",
                "--json",
                str(path),
            ]
        )
        == 0
    )
    out = json.loads(path.read_text())
    assert set(out["error"]) == {"0.99", "0.9"} and out["pytorch_momenta"] == [0.01, 0.1]


@pytest.mark.parametrize(
    "flags",
    [
        ["--convention", "tf"],
        ["--momenta", "1.5"],
        ["--momenta", "0"],
        ["--convention", "keras", "--momenta", "1"],
        ["--var-estimator", "x"],
        ["--lr", "-1"],
        ["--steps", "many"],
        ["--bogus"],
    ],
)
def test_cli_bad_flags_exit_2(flags, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["running_stats", *flags, "--json", str(tmp_path / "x.json")]) == 2
    assert err.getvalue().count("\n") == 1


def test_figures_draw_only_the_shown_momenta():
    res = result(RunningStatsSpec(momenta=(0.01, 0.1, 0.5), **SMALL))
    shown = [0, 3]
    names = {t.name for t in figs.trajectories(res, 1, 2, shown).data}
    assert {res.labels[0], res.labels[3]} <= names and res.labels[1] not in names
    assert len(figs.errors(res, "eval", shown).data) == 2 * len(shown)
    assert len(figs.accuracy(res, shown).data) == len(shown) + 1
    assert list(figs.precise_bn(res, shown).data[0].y) == [res.labels[0], res.labels[3], "after PreciseBN (N=20)"]


def test_pytorch_snippet_runs_and_prints_one_line_per_momentum():
    spec = RunningStatsSpec(convention="keras", momenta=(0.99, 0.9), steps=30, running_init="zeros")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(lesson.pytorch_snippet(spec), "snippet", "exec"), {})
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["momentum=0.01", "momentum=0.1", "momentum=None"]
    assert len(lesson.pytorch_snippet(RunningStatsSpec()).splitlines()) < 40


def test_page_display_widgets_never_retrain_and_a_convention_switch_keeps_the_momenta(monkeypatch):
    from pathlib import Path

    from live_pages import run_to_final
    from streamlit.testing.v1 import AppTest

    calls = []
    original = rs.run

    def counting(spec):
        calls.append(spec)
        yield from original(spec)

    monkeypatch.setattr(rs, "run", counting)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=240)
    at.run()  # home, which has no settings (it would drop any in the URL)
    at.query_params.update(steps="40", depth="2", width="16", pop_every="10", seed="7")
    run_to_final(at.switch_page("pages/running_stats.py"))
    assert not at.exception and len(at.get("plotly_chart")) == 4 and len(calls) == 1
    at.multiselect[0].set_value([0, 2]).run()
    at.selectbox(key="running_stats.layer2").set_value(1).run()
    at.selectbox(key="running_stats.channel16").set_value(5).run()
    at.radio(key="running_stats.population").set_value("eval").run()
    assert not at.exception and len(calls) == 1  # display choices only redraw
    at.sidebar.selectbox(key="running_stats.convention").set_value("keras")
    run_to_final(at)
    assert at.sidebar.text_input(key="running_stats.momenta").value == "0.999,0.99,0.9,0.5"
    assert calls[-1].pytorch_momenta == calls[0].pytorch_momenta and calls[-1].convention == "keras"
