"""RowRNN with per-step BN vs LayerNorm: the per-step statistics, and sequences longer than training."""

import json

import numpy as np
import pytest
import torch

from normviz.experiments.rnn_norms import HIDDEN, NORMS, REPEATS, TRAIN_STEPS, RNNSpec, bn_mismatch, run
from normviz.models import RowRNN, rows_as_sequence
from normviz.runs import final


@pytest.fixture(scope="module")
def result():
    return final(run(RNNSpec(steps=30, lr=0.01)))


def test_bn_keeps_statistics_for_each_time_step(result):
    assert result.done and result.bn_mean.shape == (TRAIN_STEPS, HIDDEN) == result.bn_var.shape
    assert np.all(result.bn_var > 0)
    # step 0 has no previous state: its statistics are not those of the last step
    assert np.abs(result.bn_var[0] - result.bn_var[-1]).mean() > 0.05


def test_longer_sequences_are_refused_then_reuse_the_last_step(result):
    assert "no statistics for time step t=8" in result.refusal and "reuse_last_stats=True" in result.refusal
    assert set(result.long_acc) == set(NORMS)
    assert all(len(a) == len(REPEATS) and all(0 <= v <= 1 for v in a) for a in result.long_acc.values())
    assert len(result.shift) == len(result.std_ratio) == TRAIN_STEPS * max(REPEATS)
    assert np.all(np.isfinite(result.shift)) and np.all(result.std_ratio > 0)


def test_summary_is_json(result):
    out = json.loads(json.dumps(result.summary()))
    assert out["sequence_lengths"] == [8, 16, 24] and len(out["bn_per_step"]["mean"]) == TRAIN_STEPS
    assert set(out["test_acc"]) == set(NORMS)


def test_mismatch_compares_each_step_with_the_statistics_bn_uses():
    model = RowRNN(hidden=16, norm="batch", max_steps=8, generator=torch.Generator().manual_seed(0))
    x = torch.randn(200, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # distinct running stats per step
        for t, norm in enumerate(model.norms):
            norm.stats.mean.fill_(0.1 * t)
            norm.stats.var.fill_(1.0 + t)
    m = bn_mismatch(model, x, repeat=2)
    shift, ratio = m["shift"], m["std_ratio"]
    assert len(shift) == 16 and all(len(v) == 16 for v in m.values())
    # step 0: the pre-norm input is W_x x_0 (no previous state); BN 0 holds mean 0, var 1
    pre = model.w_x(rows_as_sequence(x)[:, 0]).detach()
    expected = (pre.mean(0) / (1 + model.norms[0].eps) ** 0.5).pow(2).mean().sqrt().item()
    assert shift[0] == pytest.approx(expected, rel=1e-4)
    std = (pre.std(0, unbiased=False) / (1 + model.norms[0].eps) ** 0.5).log().mean().exp().item()
    assert ratio[0] == pytest.approx(std, rel=1e-4)
    assert m["seen_std"][0] == pytest.approx(pre.std(0, unbiased=False).mean().item(), rel=1e-4)
    # from step 8 on, BN divides by step 7's running std: var 1 + 7
    np.testing.assert_allclose(m["used_std"][7:], np.sqrt(8 + model.norms[7].eps), rtol=1e-5)
    assert m["used_std"][3] == pytest.approx(np.sqrt(4 + model.norms[3].eps), rel=1e-5)
    assert model.training  # the mode is restored


def test_layer_norm_rnn_has_one_norm_for_any_length():
    model = RowRNN(hidden=16, norm="layer")
    assert len(model.norms) == 1
    assert model(rows_as_sequence(torch.randn(3, 64), repeat=3)).shape == (3, 10)


def test_snippet_runs(capsys):
    from normviz.lessons.alternatives import pytorch_snippet

    exec(compile(pytorch_snippet(RNNSpec(steps=20)), "snippet", "exec"), {})
    out = capsys.readouterr().out
    assert "8 steps: test accuracy" in out and "16 steps: test accuracy" in out and "running var of step 0" in out


def test_long_note_reports_this_runs_numbers(result):
    from normviz.lessons.alternatives import long_note

    note = long_note(result)
    gap = np.abs(result.seen_std / result.used_std - 1)
    assert f"{result.long_acc['layer'][1]:.0%}" in note and f"by {gap[TRAIN_STEPS:].mean():.0%} beyond" in note
