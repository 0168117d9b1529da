"""The Activations experiment: a BN and a no-BN network from identical weights, recorded per layer."""

import json

import numpy as np
import pytest

from normviz.cli import main
from normviz.experiments.activations import ActivationsSpec, run
from normviz.runs import final

FAST = dict(steps=120, probe_every=30)


@pytest.fixture(scope="module")
def result():
    return final(run(ActivationsSpec(**FAST)))


def test_bn_trains_and_tiny_init_without_bn_stays_at_chance(result):
    bn, plain = result.snapshots["test_acc"][-1]
    assert bn > 0.85 and plain < 0.2
    assert result.done and result.steps_done == FAST["steps"] and result.diverged_at == [None, None]


def test_both_networks_start_from_identical_weights(result):
    first_layer_input = result.snapshots["hist_linear"][0, :, 0]  # (K, nb) at step 0
    assert np.array_equal(first_layer_input[0], first_layer_input[1])


def test_tiny_init_collapses_activations_without_bn_only(result):
    std = result.snapshots["std"][0]  # (K, L) at step 0
    assert std[1, -1] < 1e-6 < 0.1 < std[0, -1]  # no BN: deep layer ~0; BN: unit-scale


def test_histograms_are_distributions_and_probe_steps_are_recorded(result):
    for name in ("hist_linear", "hist_norm", "hist_act"):
        assert np.allclose(result.snapshots[name].sum(-1), 1, atol=1e-5)
    assert result.probe_steps.tolist() == [0, 30, 60, 90, 120]
    grads = result.snapshots["grad_hist"]
    assert np.isnan(grads[0]).all() and np.allclose(grads[1:].sum(-1), 1, atol=1e-5)


def test_partial_results_grow_and_end_with_the_final_one():
    parts = list(run(ActivationsSpec(steps=40, probe_every=10)))
    assert [p.done for p in parts][-1] and not any(p.done for p in parts[:-1])
    assert len(parts[0].probe_steps) == 1 and len(parts[-1].probe_steps) == 5


def test_divergence_is_reported_not_hidden():
    result = final(run(ActivationsSpec(lr=100.0, init="he", steps=60, probe_every=10)))
    assert result.diverged_at[1] is not None and result.done
    assert np.isnan(result.snapshots["test_acc"][-1, 1])


def test_dead_relu_and_saturation_definitions():
    sig = final(run(ActivationsSpec(activation="sigmoid", init_std=1.0, steps=1, probe_every=1)))
    saturated = sig.snapshots["saturated"][0]  # (K, L)
    assert saturated[1, -1] > 0.5 and saturated[0, -1] < 0.2  # no BN saturates, BN does not


def test_cli_writes_per_layer_stats_and_accuracies(tmp_path):
    out = tmp_path / "a.json"
    assert main(["activations", "--steps", "30", "--probe-every", "10", "--depth", "3", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) >= {"BN", "no BN", "spec", "diverged_at"}
    assert len(data["BN"]["layers"]["mean"]) == 3 and 0 <= data["no BN"]["final_test_acc"] <= 1


@pytest.mark.parametrize(
    "argv",
    [
        ["activations", "--depth", "0"],
        ["activations", "--activation", "swish"],
        ["activations", "--nope"],
        ["activations", "--lr", "nan"],
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
