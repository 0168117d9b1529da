"""Each preset shows what its text says: its key claim, checked on the result of its own settings.

One section per page; a page's presets are run once per module (fixtures) and shared by its checks.
"""

import numpy as np
import pytest
import torch

from normviz.runs import final

torch.set_num_threads(1)


# --- Activations ---------------------------------------------------------------------------------------------
from normviz.experiments import activations as act  # noqa: E402
from normviz.lessons.activations import PRESETS as ACT_PRESETS  # noqa: E402


@pytest.fixture(scope="module")
def act_results():
    return {name: final(act.run(p.spec(act.ActivationsSpec))) for name, p in ACT_PRESETS.items()}


def _final_test_acc(result):
    return dict(zip(result.models, result.snapshots["test_acc"][-1]))


def test_tiny_init_collapses_without_bn(act_results):
    r = act_results["tiny init, no BN: activations collapse"]
    std0 = dict(zip(r.models, r.snapshots["std"][0]))  # (L,) per model at step 0
    assert std0["no BN"][-1] < 1e-3 < 0.3 < std0["BN"][-1]  # the deep layer is a spike at 0 without BN
    assert np.all(np.diff(std0["no BN"]) < 0)  # and it shrinks layer by layer
    acc = _final_test_acc(r)
    assert acc["no BN"] < 0.2 and acc["BN"] > 0.8  # chance vs trained


def test_sigmoid_std1_saturates_without_bn(act_results):
    r = act_results["sigmoid, std=1: saturation"]
    sat = dict(zip(r.models, r.snapshots["saturated"][-1]))  # share saturated per layer, at the end
    sat0 = dict(zip(r.models, r.snapshots["saturated"][0]))
    assert sat["no BN"][2:].min() > 0.4 and sat0["no BN"][2:].min() > 0.4  # deep layers, start and end
    assert sat["BN"].max() < 0.05
    acc = _final_test_acc(r)
    assert acc["BN"] > acc["no BN"] + 0.05


def test_he_init_keeps_scale_and_both_train(act_results):
    r = act_results["He init + ReLU"]
    std0 = dict(zip(r.models, r.snapshots["std"][0]))["no BN"]
    assert std0.max() / std0.min() < 2  # flat across layers at step 0, without BN
    assert all(d is None for d in r.diverged_at)
    assert min(_final_test_acc(r).values()) > 0.9


# --- Init-scale sweep ----------------------------------------------------------------------------------------
from normviz.experiments import init_sweep  # noqa: E402
from normviz.lessons.init_sweep import PRESETS as SWEEP_PRESETS  # noqa: E402


def test_dlfs_grid_bn_trains_at_most_scales():
    r = final(init_sweep.run(SWEEP_PRESETS["the DLfS 16-scale grid"].spec(init_sweep.InitSweepSpec)))
    bn, plain = r.bn_acc[:, -1], r.plain_acc[:, -1]  # final train accuracy per scale, largest first
    assert (bn > 0.9).sum() >= 8 and (np.nan_to_num(plain) > 0.9).sum() <= 3
    assert r.diverged_at[len(r.scales)] is not None  # no BN at std 1 diverges
    assert np.all(plain[-8:] < 0.2)  # small scales without BN stay at chance
    assert 0.4 < bn[-1] < bn[2:12].min()  # with the book's eps the smallest scale learns, more slowly
