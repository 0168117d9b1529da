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
    assert main(["init-sweep", "--epochs", "2", "--scales", "3", "--data", "digits", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["epochs"] == 2 and len(data["scales"]) == 3 and data["scales"][0] > data["scales"][-1]
    assert np.array(data["bn"]["train_acc"]).shape == (3, 2) and np.array(data["plain"]["train_acc"]).shape == (3, 2)


def test_cli_rejects_bad_running_init(capsys):
    assert main(["init-sweep", "--running-init", "ones"]) == 2
    assert "running_init" in capsys.readouterr().err
