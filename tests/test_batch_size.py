"""The batch-size sweep and the online stream: the stacked norms equal the per-model layers, and BN is the
one that needs its batch."""

import json

import numpy as np
import pytest
import torch

from normviz import views
from normviz.cli import main
from normviz.data import load_checked
from normviz.experiments.batch_size import (
    REF_BATCH,
    BatchSizeSpec,
    NormStack,
    batched_accuracy,
    make_stack,
    run,
)
from normviz.experiments.inference import TrainVsInferenceSpec
from normviz.layers import BatchRenorm
from normviz.lessons.train_vs_inference import PRESETS
from normviz.models import MLP
from normviz.runs import final
from normviz.train import StackedTrainer

TOL = {"atol": 2e-5, "rtol": 1e-5}
TOL64 = {"atol": 1e-9, "rtol": 1e-9}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sweep():
    return final(run(BatchSizeSpec(sizes=(2, 32), stream_steps=120)))


def reference_mlp(stack: NormStack, k: int, norm_place: str) -> MLP:
    """Model k of the stack as a per-model MLP of models.py with our layer modules and the same weights."""
    kind = stack.kinds[k]
    kwargs = {
        "batch": dict(momenta=(stack.momentum,)),
        "group": dict(groups=stack.groups),
        "renorm": dict(momentum=stack.momentum, rmax=stack.rmax, dmax=stack.dmax),
    }.get(kind, {})
    mlp = MLP(
        stack.weights[0].shape[1],
        stack.weights[-1].shape[2],
        stack.depth,
        stack.width,
        norm=kind,
        norm_place=norm_place,
        **kwargs,
    )
    with torch.no_grad():
        for i, layer in enumerate([b.linear for b in mlp.blocks] + [mlp.head]):
            layer.weight.copy_(stack.weights[i][k].T)
            layer.bias.copy_(stack.biases[i][k, 0])
        for i, block in enumerate(mlp.blocks):
            if kind != "none":
                g = torch.randn(stack.width) * 0.3 + 1  # non-trivial gamma/beta, set in both
                block.norm.weight.copy_(g)
                block.norm.bias.copy_(g - 1)
                stack.gammas[i][k, 0] = g
                stack.betas[i][k, 0] = g - 1
    return mlp


@pytest.mark.parametrize("norm_place", ["before", "after"])
def test_norm_stack_equals_per_model_mlps_in_train_and_eval(norm_place):
    torch.manual_seed(0)
    stack = NormStack(
        20,
        5,
        ("layer", "renorm", "group", "batch", "none"),
        depth=2,
        width=12,
        norm_place=norm_place,
        groups=3,
        momentum=0.3,
        rmax=1.5,
        dmax=0.5,
    )
    refs = [reference_mlp(stack, k, norm_place).double() for k in range(stack.k)]
    stack.double()  # a ReLU channel that is 0 in the whole batch is ill-conditioned (1/sqrt(eps)) in float32
    xs = [torch.randn(8, 20, dtype=torch.float64) * 2 + 1 for _ in range(4)]
    for x in xs[:3]:  # train mode, running stats move (and Renorm's r, d get clipped)
        stack.train(), [m.train() for m in refs]
        out = stack(x, "train")
        for k, ref in enumerate(refs):
            torch.testing.assert_close(out[k], ref(x), **TOL64)
    grad = torch.autograd.grad(stack(xs[3], "probe").square().sum(), stack.weights[0])[0]
    for k, ref in enumerate(refs):
        ref.zero_grad()
        ref.train()
        saved = [b.clone() for b in ref.buffers()]
        ref(xs[3]).square().sum().backward()
        torch.testing.assert_close(grad[k], ref.blocks[0].linear.weight.grad.T, **TOL64)
        for b, s in zip(ref.buffers(), saved):
            b.copy_(s)
        ref.eval()
        torch.testing.assert_close(stack(xs[3], "eval")[k], ref(xs[3]), **TOL64)
    renorm = refs[stack.kinds.index("renorm")].blocks[1].norm
    assert isinstance(renorm, BatchRenorm) and (renorm.last_r.max() == 1.5 or renorm.last_d.abs().max() == 0.5)


def test_batch_renorm_without_room_trains_exactly_like_bn():
    data = load_checked(BatchSizeSpec())
    spec = BatchSizeSpec(norms=("batch", "renorm"), rmax=1.0, dmax=0.0)
    gen = torch.Generator().manual_seed(0)
    stack = make_stack(spec, data.n_features, data.n_classes, gen)
    trainer = StackedTrainer(stack, data.x_train, data.y_train, optimizer="sgd", lr=0.05, batch_size=8, generator=gen)
    for _ in range(30):
        trainer.step()
    for w in stack.weights:
        torch.testing.assert_close(w[0], w[1], **TOL)
    mean, var = stack.running_stats(0)
    torch.testing.assert_close(mean[0], mean[1], **TOL)
    torch.testing.assert_close(var[0], var[1], **TOL)


def test_renorm_corrections_follow_the_formula_and_clip():
    stack = NormStack(4, 2, ("renorm",), depth=1, width=3, momentum=0.5, rmax=2.0, dmax=1.0, init="he")
    rm, rv = (s[0] for s in stack.running_stats(0))
    rm.copy_(torch.tensor([0.0, 10.0, -0.5]))
    rv.copy_(torch.tensor([1.0, 1.0, 100.0]))
    h = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.2, 0.4], [2.0, -0.2, 0.2], [3.0, 0.0, -0.6]])  # (B, C)
    y = stack._batch_stat_norm(h.unsqueeze(0), 0, "probe")[0]
    var, mean = torch.var_mean(h, 0, unbiased=False)
    std, run_std = torch.sqrt(var + 1e-5), torch.sqrt(torch.tensor([1.0, 1.0, 100.0]) + 1e-5)
    r = (std / run_std).clamp(0.5, 2.0)
    d = ((mean - torch.tensor([0.0, 10.0, -0.5])) / run_std).clamp(-1.0, 1.0)
    assert r[2] == 0.5 and d[1] == -1.0 and 0.5 < r[0] < 2.0  # clipped: r at 1/rmax, d at -dmax; r[0] is not
    torch.testing.assert_close(y, (h - mean) / std * r + d)
    torch.testing.assert_close(rm, torch.tensor([0.0, 10.0, -0.5]))  # probe: running stats untouched
    y_train = stack._batch_stat_norm(h.unsqueeze(0), 0, "train")[0]  # same corrections, from the old stats
    torch.testing.assert_close(y_train, y)
    torch.testing.assert_close(rm, 0.5 * torch.tensor([0.0, 10.0, -0.5]) + 0.5 * mean)
    torch.testing.assert_close(rv, 0.5 * torch.tensor([1.0, 1.0, 100.0]) + 0.5 * var * 4 / 3)  # unbiased


def test_bn_loses_more_from_batch_32_to_2_than_group_and_layer_norm(sweep):
    acc = dict(zip(sweep.norms, sweep.test_acc))  # (S,) per norm, sizes (2, 32)
    drop = {k: a[1] - a[0] for k, a in acc.items()}
    assert drop["batch"] > drop["group"] + 0.3 and drop["batch"] > drop["layer"] + 0.3
    assert abs(drop["group"]) < 0.1 and abs(drop["layer"]) < 0.1
    assert drop["renorm"] < drop["batch"]


def test_per_sample_norms_have_no_train_eval_gap_and_bn_has_one(sweep):
    for k, kind in enumerate(sweep.norms):
        gap = sweep.train_mode_acc[k] - sweep.test_acc[k]
        if kind in ("group", "layer"):
            np.testing.assert_array_equal(sweep.train_mode_acc[k], sweep.test_acc[k])
        elif kind == "batch":
            assert abs(gap[1]) < 0.05  # batch 32: train and eval mode agree
            assert sweep.train_mode_acc[k, 0] < sweep.test_acc[k, 1] - 0.3  # batch 2 in train mode


def test_linear_learning_rate_scaling_and_same_samples_seen(sweep):
    np.testing.assert_allclose(sweep.lr, 0.1 * sweep.sizes / REF_BATCH)
    n = len(load_checked(BatchSizeSpec()).x_train)
    np.testing.assert_array_equal(sweep.steps, n // sweep.sizes)


def test_stream_batch_norms_skip_batches_of_one(sweep):
    ones = sweep.stream_batch == 1
    assert ones.any() and len(sweep.stream_batch) == 120
    for k, kind in enumerate(sweep.norms):
        skips = sweep.stream_skipped[k]
        assert skips == (ones.sum() if kind in ("batch", "renorm") else 0)
        assert np.isnan(sweep.stream_loss[ones, k]).all() == (kind in ("batch", "renorm"))
        assert np.isfinite(sweep.stream_loss[~ones, k]).all()
    assert np.all(sweep.stream_acc[-1] > 0.8)


def test_one_fixed_large_learning_rate_diverges_and_is_reported():
    r = final(run(BatchSizeSpec(sizes=(2,), norms=("batch", "layer"), lr=10.0, lr_scaling="none", stream_steps=10)))
    diverged = np.array([[d is not None for d in row] for row in r.diverged_at])  # (N, S)
    assert diverged.any()
    assert np.isnan(r.test_acc[diverged]).all() and np.isfinite(r.test_acc[~diverged]).all()


def test_batched_accuracy_scores_every_sample_once():
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    seen = []

    def logits(xb):  # "correct" for every sample; record what was scored
        seen.append(xb.flatten().tolist())
        return torch.nn.functional.one_hot(xb.flatten().long(), 10).float()

    assert batched_accuracy(logits, x, y, 4, torch.Generator().manual_seed(0)) == 1.0
    assert [len(b) for b in seen] == [4, 4, 4] and sorted(sum(seen, [])[:10]) == list(range(10))


def test_preset_small_batches_bn_vs_groupnorm():
    spec = PRESETS["small batches: BN vs GroupNorm"].spec(TrainVsInferenceSpec)
    assert spec.batch_size == 2 and spec.norms == ("batch", "group")
    r = final(run(spec.project(BatchSizeSpec).replace(sizes=(2, 32), stream_steps=10)))
    bn, gn = r.test_acc
    assert bn[0] < gn[0] - 0.4 and abs(bn[1] - gn[1]) < 0.1


def test_cli_json_shape(tmp_path):
    out = tmp_path / "bs.json"
    assert (
        main(
            [
                "train_vs_inference",
                "--part",
                "batch_size",
                "--sizes",
                "4,2",
                "--norms",
                "group,batch",
                "--stream-steps",
                "10",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert set(data) == {"sizes", "lr_scaling", "lr", "steps", "test_acc"} and data["sizes"] == [2, 4]
    spec = BatchSizeSpec()  # the learning rate of each size is recorded: lr x B / 32 by default
    assert data["lr_scaling"] == "linear" and data["lr"] == pytest.approx([spec.lr * 2 / 32, spec.lr * 4 / 32])
    assert list(data["test_acc"]) == ["group", "batch"] and all(len(v) == 2 for v in data["test_acc"].values())


@pytest.mark.parametrize(
    "argv",
    [
        ["batch-size", "--norms", "batch,foo"],
        ["batch-size", "--sizes", "1,2"],
        ["batch-size", "--sizes", "2,2"],
        ["batch-size", "--rmax", "0.5"],
        ["batch-size", "--sizes", "2,4096"],
        ["batch-size", "--nope"],
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_batch_norm_refuses_a_batch_of_one_in_the_stack_too():
    stack = NormStack(4, 2, ("batch", "layer"), depth=1, width=3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        stack(torch.randn(1, 4), "train")
    out = stack(torch.randn(1, 4), "train", skip_batch_stats=True)  # LayerNorm still computes
    assert out.shape == (2, 1, 2) and torch.isfinite(out).all()


def test_while_the_sweep_trains_its_words_quote_no_missing_number():
    """The live frames' captions and notices: a size not trained yet is not a "+nan" or "n/a" in a sentence."""
    view = views.view("train_vs_inference")
    (part,) = [p for p in view.parts(view.spec_cls(sizes=(2, 8, 32), stream_steps=10)) if p.experiment == "batch_size"]
    frames = list(part.run(part.spec))
    assert len(frames) > 1 and not frames[0].done
    for r in frames:
        for panel in view.panels(part, r, r.done, 14):
            words = " ".join(str(getattr(panel, a, "")) for a in ("caption", "notice", "body")).lower()
            assert "nan" not in words.split() and "+nan" not in words and "n/a" not in words, (r.done, words[:300])
