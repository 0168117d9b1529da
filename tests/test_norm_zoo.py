"""Every norm of the zoo trains, the accuracy table has one row per norm; the cost measurement adds up."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from normviz.experiments import norm_cost, norm_zoo
from normviz.experiments.alternatives import AlternativesSpec
from normviz.experiments.norm_cost import CostSpec, configurations, count_ops, with_torch_norms
from normviz.experiments.norm_zoo import (
    CNN_NORMS,
    MLP_NORMS,
    Replicas,
    ZooSpec,
    build,
    eval_accuracy,
)
from normviz.layers import NORM_LABELS, BatchNorm, BatchRenorm, GroupNorm, WSConv2d, group_count
from normviz.lessons import alternatives as lesson
from normviz.runs import final
from normviz.stacked import stacked_cross_entropy


@pytest.mark.parametrize("channels, groups, expected", [(16, 4, 4), (16, 3, 2), (32, 32, 32), (16, 64, 16), (6, 4, 3)])
def test_group_count(channels, groups, expected):
    assert group_count(channels, groups) == expected


def test_build_gives_each_norm_its_layers():
    ws = build("cnn", "group+ws", 4, seed=0)
    assert all(isinstance(b.linear, WSConv2d) and isinstance(b.norm, GroupNorm) for b in ws.blocks)
    assert not isinstance(build("cnn", "group", 4, seed=0).blocks[0].linear, WSConv2d)
    renorm = build("cnn", "renorm", 4, seed=0).blocks[0].norm
    assert isinstance(renorm, BatchRenorm) and renorm.stats.momenta == (0.1,)
    assert build("mlp", "group", 3, seed=0).blocks[0].norm.num_groups == 2  # 64 channels, G <= 3
    with pytest.raises(ValueError, match="needs conv layers"):
        build("mlp", "instance", 4, seed=0)


def test_same_seed_same_initial_weights_for_every_norm():
    a, b = build("cnn", "none", 4, seed=5), build("cnn", "layer", 4, seed=5)
    assert torch.equal(a.blocks[0].linear.weight, b.blocks[0].linear.weight)


@pytest.mark.parametrize("model, norms", [("cnn", CNN_NORMS + ("rms",)), ("mlp", MLP_NORMS + ("rms",))])
def test_every_norm_trains_and_the_table_has_one_row_per_norm(model, norms):
    steps = 40 if model == "mlp" else 10
    r = final(norm_zoo.run(ZooSpec(model=model, batch_size=16, steps=steps, lr=0.01)))
    assert r.done and r.steps_done == steps and r.norms == norms
    rows = r.table()
    assert [row["norm"] for row in rows] == [NORM_LABELS[n] for n in norms]
    assert all("diverged at step" not in row for row in rows)  # the column appears only when needed
    assert all(
        0 <= row["test accuracy"] <= 1 and np.isfinite(row[f"loss (last {norm_zoo.SMOOTH} steps)"]) for row in rows
    )
    assert r.loss.shape == (steps, len(norms)) and np.isfinite(r.loss).all()
    assert r.probe_steps[0] == 0 and r.probe_steps[-1] == steps
    assert r.test_acc.shape == (len(r.probe_steps), len(norms), 1)
    if model == "mlp":  # 40 steps of Adam learn something with every norm
        assert (r.test_acc[-1] > 0.5).all(), r.test_acc[-1]
    out = json.loads(json.dumps(r.summary()))
    assert len(out["table"]) == len(norms) and out["batch_size"] == 16


def test_a_diverging_model_is_stopped_and_reported(monkeypatch):
    real_build = norm_zoo.build

    def build_with_a_broken_layernorm(model, norm, *args):
        net = real_build(model, norm, *args)
        if norm == "layer":
            with torch.no_grad():
                net.head.bias.fill_(float("inf"))  # the loss is non-finite from step 1
        return net

    monkeypatch.setattr(norm_zoo, "build", build_with_a_broken_layernorm)
    r = final(norm_zoo.run(ZooSpec(model="mlp", steps=12, batch_size=8)))
    assert r.diverged_at == [1 if n == "layer" else None for n in norm_zoo.zoo_norms("mlp")]
    k = MLP_NORMS.index("layer")
    assert np.isnan(r.loss[:, k]).all() and np.isfinite(np.delete(r.loss, k, axis=1)).all()
    row = r.table()[k]
    assert row["diverged at step"] == 1 and row["test accuracy"] is None and row["train accuracy"] is None


def test_torch_built_ins_replace_our_layers():
    model = with_torch_norms(build("cnn", "batch", 4, seed=0), "batch", 4, conv=True)
    assert all(isinstance(b.norm, nn.BatchNorm2d) for b in model.blocks)
    gn = with_torch_norms(build("mlp", "group", 4, seed=0), "group", 4, conv=False)
    assert all(isinstance(b.norm, nn.GroupNorm) and b.norm.num_groups == 4 for b in gn.blocks)
    assert with_torch_norms(build("cnn", "renorm", 4, seed=0), "renorm", 4, conv=True) is None
    assert ("renorm", "torch") not in configurations(CostSpec()) and ("instance", "torch") in configurations(CostSpec())


def test_torch_layer_norm_stand_in_computes_what_ours_does():
    ours = build("cnn", "layer", 4, seed=0)
    theirs = with_torch_norms(build("cnn", "layer", 4, seed=0), "layer", 4, conv=True)
    x = torch.randn(8, 64)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_our_batchnorm_runs_more_tensor_operations_than_torchs():
    x, y = torch.randn(8, 64), torch.randint(0, 10, (8,))
    plain = count_ops(build("cnn", "none", 4, seed=0), x, y)
    ours = count_ops(build("cnn", "batch", 4, seed=0), x, y)
    theirs = count_ops(with_torch_norms(build("cnn", "batch", 4, seed=0), "batch", 4, True), x, y)
    assert 0 < plain < theirs < ours


def test_cost_share_is_the_ablation_formula():
    r = final(norm_cost.run(CostSpec(model="mlp", cost_batch_sizes=(8, 32))))
    assert r.done and r.ms.shape == (len(r.configs), 2) and np.all(r.ms > 0)
    assert np.all(r.ms <= r.ms_median + 1e-9)  # the fastest round is not slower than the median
    k = r.configs.index(("batch", "ours"))
    np.testing.assert_allclose(r.share()[k], 1 - r.ms[0] / r.ms[k])
    rows = r.table()
    assert len(rows) == len(r.configs) - 1 and rows[0]["tensor ops per step"] > 0
    text = lesson.explain(r)
    assert f"{r.share()[k, 1]:.0%}" in text and "seed material" not in text
    assert (
        "arXiv 1709.08145" in text
        and "DenseNet-121's training performance by 25.7%" in text
        and "arXiv 1807.01702" in text
    )
    assert json.loads(json.dumps(r.summary()))["no_norm_ops"] > 0


def test_batch_norm_over_two_samples_outputs_plus_or_minus_one():
    y = BatchNorm(6)(torch.randn(2, 6, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(y.abs(), torch.ones(2, 6), atol=1e-3, rtol=0)


def test_preset_batch_of_two_breaks_batchnorm_but_not_layer_or_group_norm():
    preset = lesson.PRESETS["Batch of 2: BatchNorm breaks, LayerNorm and GroupNorm do not"]
    r = final(norm_zoo.run(preset.spec(AlternativesSpec).sub().replace(steps=300)))  # the preset trains 600 steps
    acc = dict(zip(r.norms, r.test_acc[-1, :, 0]))
    assert acc["batch"] < 0.5 and acc["renorm"] < 0.6, acc
    assert acc["layer"] > 0.75 and acc["group"] > 0.75, acc


@pytest.mark.parametrize(
    "spec",
    [
        ZooSpec(steps=20),
        ZooSpec(model="mlp", steps=20, batch_size=4),
        CostSpec(cost_batch_sizes=(8,)),
        CostSpec(model="mlp"),
    ],
)
def test_snippets_run(spec, capsys):
    exec(compile(lesson.pytorch_snippet(spec), "snippet", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    if isinstance(spec, ZooSpec):
        assert len(lines) == (4 if spec.model == "cnn" else 3) and all("test accuracy" in line for line in lines)
    else:
        assert len(lines) == 3 and all("share in the norm layers" in line for line in lines)


@pytest.mark.parametrize("norm", ["batch", "group+ws", "renorm", "instance"])
def test_replicas_train_like_separate_models(norm):
    """Two seeds as one vmapped computation end where two separate models trained alone end."""
    seeds, x = (3, 4), torch.randn(5, 16, 64, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (5, 16), generator=torch.Generator().manual_seed(1))
    stack = Replicas([build("cnn", norm, 4, s) for s in seeds])
    alone = [build("cnn", norm, 4, s) for s in seeds]
    # SGD, not Adam: a conv bias before BN/IN has a zero gradient up to rounding, which Adam would blow up to lr
    opt = torch.optim.SGD(stack.parameters(), lr=0.1)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in alone]
    for xb, yb in zip(x, y):
        opt.zero_grad()
        stacked_cross_entropy(stack(xb), yb).sum().backward()
        opt.step()
        for m, o in zip(alone, opts):
            o.zero_grad()
            nn.functional.cross_entropy(m(xb), yb).backward()
            o.step()
    for r, m in enumerate(alone):
        for name, p in m.named_parameters():
            torch.testing.assert_close(stack.params[name][r], p, atol=1e-5, rtol=1e-4)
        for name, b in m.named_buffers():  # BatchNorm's running statistics, per copy
            torch.testing.assert_close(stack.buffers[name][r], b, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(stack.accuracy(x[0], y[0]), [eval_accuracy(m, x[0], y[0]) for m in alone])


def test_seeds_give_a_range_in_the_table():
    r = final(norm_zoo.run(ZooSpec(model="mlp", steps=10, seeds=2)))
    assert r.test_acc.shape[-1] == 2 and r.train_acc.shape == (len(norm_zoo.zoo_norms("mlp")), 2)
    for k, row in enumerate(r.table()):
        assert row["test accuracy, lowest seed"] <= row["test accuracy"] <= row["test accuracy, highest seed"]
        assert row["test accuracy, lowest seed"] == pytest.approx(float(r.test_acc[-1, k].min()))


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_rmsnorm_takes_layernorms_places_from_the_same_weights(model):
    from normviz.layers import LayerNorm, RMSNorm

    rms, ln = build(model, "rms", 4, seed=2), build(model, "layer", 4, seed=2)
    assert all(isinstance(b.norm, RMSNorm) for b in rms.blocks) and all(
        isinstance(b.norm, LayerNorm) for b in ln.blocks
    )
    assert all(torch.equal(a.linear.weight, b.linear.weight) for a, b in zip(rms.blocks, ln.blocks))
