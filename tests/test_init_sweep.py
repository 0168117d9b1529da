"""The DLfS init-scale sweep reproduces the book's qualitative result, as one stacked run."""

import json

import numpy as np
import pytest

from normviz.cli import main
from normviz.experiments.init_sweep import InitSweepSpec, run
from normviz.runs import final


@pytest.fixture(scope="module")
def default_sweep():
    return final(run(InitSweepSpec()))


def test_bn_learns_at_most_scales_and_no_bn_fails_at_small_ones(default_sweep):
    r = default_sweep
    assert r.bn_acc.shape == (16, 20) and r.plain_acc.shape == (16, 20)
    assert (r.bn_acc[:, -1] >= 0.85).sum() >= 10
    assert (r.plain_acc[-8:, -1] <= 0.2).all()


def test_scales_go_from_largest_to_smallest(default_sweep):
    assert np.allclose(default_sweep.scales, np.logspace(0, -4, 16))


def test_pytorch_running_var_init_hides_early_learning_in_eval_mode():
    book = final(run(InitSweepSpec(epochs=2, scales=4, running_init="zeros")))
    torch_init = final(run(InitSweepSpec(epochs=2, scales=4, running_init="pytorch")))
    # at std 1e-4 the true layer-1 variance is ~1e-8: a running var that starts at 1 dominates
    assert torch_init.bn_acc[-1, 0] <= 0.2 < book.bn_acc[2, 0]


def test_cli_json_shape(tmp_path):
    out = tmp_path / "s.json"
    assert main(["init_sweep", "--epochs", "2", "--scales", "3", "--data", "digits", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["epochs"] == 2 and len(data["scales"]) == 3 and data["scales"][0] > data["scales"][-1]
    assert np.array(data["bn"]["train_acc"]).shape == (3, 2) and np.array(data["plain"]["train_acc"]).shape == (3, 2)


def test_cli_rejects_bad_running_init(capsys):
    assert main(["init_sweep", "--running-init", "ones"]) == 2
    assert "running_init" in capsys.readouterr().err


def test_the_grid_presets_notice(default_sweep):
    """Each number of the notice of 'the DLfS 16-scale grid', measured on its run (the default settings)."""
    r, scales = default_sweep, np.array(default_sweep.scales)
    assert r.spec.eps == 1e-6  # the book's BatchNormalization: 10e-7
    bn, plain = r.bn_acc[:, -1], r.plain_acc[:, -1]
    assert (bn > 0.4).all()  # with BN every scale learns
    fastest = (scales <= 0.3) & (scales >= 1e-3)  # "fastest from about 0.3 down to 1e-3"
    assert bn[fastest].min() > max(bn[~fastest])
    learns = plain > 0.5  # without BN only 0.29 and 0.16
    assert np.allclose(scales[learns], [0.29, 0.16], rtol=0.02)
    assert np.isnan(plain[scales > 0.3]).all()  # larger ones diverge
    assert (plain[scales < 0.1] < 0.2).all()  # smaller ones stay at or near chance
    at_chance = plain[scales < 0.05]
    assert np.all(np.abs(at_chance - 0.12) < 0.005)  # "about 12%": one answer for every input
    labels = _train_labels(r.spec)
    freq = np.bincount(labels.numpy()) / len(labels)  # the share of each digit
    assert all(np.isclose(freq, a, atol=1e-6).any() for a in at_chance)
    assert 3e-8 < r.input_var[-1, 0] < 8e-8 < r.spec.eps  # "about 5e-8 at std 1e-4", below eps
    assert bn[-1] < bn[fastest].min()  # "learning is slower"


def _train_labels(spec):
    from normviz.data import load_checked

    return load_checked(spec).y_train


def test_running_init_note_states_this_runs_numbers():
    from normviz.lessons.init_sweep import running_init_note

    r = final(run(InitSweepSpec(epochs=7, scales=9, scale_max=1e-2, running_init="pytorch")))
    note = running_init_note(r)
    k = 0  # the scale nearest 0.01
    assert f"at init std {r.scales[k]:.2g} it is {r.input_var[k, 0]:.1g} in layer 1" in note
    assert "0.9^10 = 35% after one epoch of 10 steps" in note
    stuck = [int(np.argmax(a > 0.15)) for a in r.bn_acc[k:]]
    assert f"for the first {min(stuck)} to {max(stuck)} epochs" in note and min(stuck) >= 2
    assert "Switch" in running_init_note(final(run(InitSweepSpec(epochs=1, scales=2))))
