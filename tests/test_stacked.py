"""The batched engine equals the per-model path, and its helpers (trainer, probes, run store) behave.

These are the correctness parts of the benchmarks in bench/: a speed-up only counts if the stacked
models compute what K separate torch models compute.
"""

import numpy as np
import pytest
import torch
from torch import nn

from normviz import runs
from normviz.probes import LayerProbe, fixed_edges, histogram, histograms
from normviz.runs import RunStore, Throttle, final
from normviz.stacked import StackedMLP, StackShape, make_optimizer, stacked_cross_entropy
from normviz.train import StackedTrainer, accuracy

TORCH_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "linear": nn.Identity}
TOL = {"atol": 1e-5, "rtol": 1e-5}


def reference_models(stack: StackedMLP, momentum: float = 0.1) -> list[nn.Sequential]:
    """K separate nn.Sequential MLPs built from torch's own modules, with the stack's initial weights."""
    s, models = stack.shape, []
    for k in range(stack.k):
        layers = []
        for i in range(s.depth):
            linear = nn.Linear(*stack.weights[i].shape[1:])
            act = TORCH_ACTS[s.activation]()
            if k < stack.n_bn:
                bn = nn.BatchNorm1d(s.width, eps=stack.eps, momentum=momentum)
                with torch.no_grad():
                    bn.weight.copy_(stack.gammas[i][k, 0])
                    bn.bias.copy_(stack.betas[i][k, 0])
                layers += [linear, bn, act] if s.norm_place == "before" else [linear, act, bn]
            else:
                layers += [linear, act]
        layers.append(nn.Linear(*stack.weights[-1].shape[1:]))
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(linears, stack.weights, stack.biases):
                lin.weight.copy_(w[k].T)  # the stack computes x @ W, nn.Linear x @ W.T
                lin.bias.copy_(b[k, 0])
        models.append(nn.Sequential(*layers))
    return models


def assert_same_state(stack: StackedMLP, refs: list[nn.Sequential]):
    for k, ref in enumerate(refs):
        linears = [m for m in ref if isinstance(m, nn.Linear)]
        for lin, w, b in zip(linears, stack.weights, stack.biases):
            torch.testing.assert_close(w[k].T, lin.weight, **TOL)
            torch.testing.assert_close(b[k, 0], lin.bias, **TOL)
        bns = [m for m in ref if isinstance(m, nn.BatchNorm1d)]
        assert len(bns) == (stack.shape.depth if k < stack.n_bn else 0)
        for i, bn in enumerate(bns):
            torch.testing.assert_close(stack.gammas[i][k, 0], bn.weight, **TOL)
            torch.testing.assert_close(stack.betas[i][k, 0], bn.bias, **TOL)
            torch.testing.assert_close(stack.stats[i].mean[0, k], bn.running_mean, **TOL)
            torch.testing.assert_close(stack.stats[i].var[0, k], bn.running_var, **TOL)
            assert stack.stats[i].num_batches_tracked.item() == bn.num_batches_tracked.item()


def make_pair(activation="relu", norm_place="before", n_bn=2, stds=(0.5, 0.2, 0.5), seed=0):
    shape = StackShape(8, 4, depth=3, width=16, activation=activation, norm_place=norm_place)
    stack = StackedMLP(shape, list(stds), n_bn=n_bn, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():  # non-trivial gamma/beta/biases, so a mix-up between models would show
        for p in list(stack.gammas) + list(stack.betas) + list(stack.biases):
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + p.numel())))
    return stack, reference_models(stack)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("norm_place", ["before", "after"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "linear"])
def test_stacked_training_equals_separate_torch_models(optimizer, norm_place, activation):
    stack, refs = make_pair(activation, norm_place)
    if optimizer == "sgd":
        make = lambda params: make_optimizer(params, "sgd", 0.05, sgd_momentum=0.9)
    else:  # the bias before a BN has a zero gradient up to rounding noise, which Adam with eps=1e-8
        # would blow up to +-lr steps with random signs in either path; eps=1e-3 keeps that under 1e-6
        make = lambda params: torch.optim.Adam(params, lr=0.01, eps=1e-3)
    opt = make(stack.parameters())
    ref_opts = [make(r.parameters()) for r in refs]
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 8, generator=gen), torch.randint(0, 4, (200,), generator=gen)
    for step in range(6):
        idx = torch.randperm(200, generator=gen)[:32]
        logits = stack(x[idx], "train")  # (K, B, C)
        losses = stacked_cross_entropy(logits, y[idx])
        opt.zero_grad()
        losses.sum().backward()
        opt.step()
        for k, (ref, ref_opt) in enumerate(zip(refs, ref_opts)):
            ref.train()
            ref_logits = ref(x[idx])
            ref_loss = nn.functional.cross_entropy(ref_logits, y[idx])
            ref_opt.zero_grad()
            ref_loss.backward()
            ref_opt.step()
            torch.testing.assert_close(logits[k].detach(), ref_logits.detach(), **TOL, msg=f"step {step} k {k}")
            torch.testing.assert_close(losses[k].detach(), ref_loss.detach(), **TOL)
        assert_same_state(stack, refs)
    with torch.no_grad():  # eval mode: running statistics
        eval_logits = stack(x, "eval")
        for k, ref in enumerate(refs):
            torch.testing.assert_close(eval_logits[k], ref.eval()(x), **TOL)
        acc = accuracy(stack, x, y)
        for k, ref in enumerate(refs):
            assert acc[k].item() == pytest.approx((ref(x).argmax(1) == y).float().mean().item())


@pytest.mark.parametrize("n_bn", [0, 3])
def test_all_or_none_with_bn(n_bn):
    stack, refs = make_pair(n_bn=n_bn)
    x = torch.randn(16, 8)
    logits = stack(x, "train")
    for k, ref in enumerate(refs):
        torch.testing.assert_close(logits[k], ref.train()(x), **TOL)
    assert_same_state(stack, refs)


@pytest.mark.parametrize(
    ("activation", "norm_place", "n_bn"),
    [("tanh", "after", 2), ("relu", "before", 2), ("relu", "before", 3), ("sigmoid", "before", 1)],
)
def test_gradients_match_torch_batchnorm_backward(activation, norm_place, n_bn):
    stack, refs = make_pair(activation=activation, norm_place=norm_place, n_bn=n_bn)
    x, proj = torch.randn(24, 8), torch.randn(24, 4)  # loss: a fixed random projection of the outputs
    (stack(x, "train") * proj).sum().backward()
    for k, ref in enumerate(refs):
        (ref.train()(x) * proj).sum().backward()
        linears = [m for m in ref if isinstance(m, nn.Linear)]
        for lin, w, b in zip(linears, stack.weights, stack.biases):
            torch.testing.assert_close(w.grad[k].T, lin.weight.grad, **TOL)
            torch.testing.assert_close(b.grad[k, 0], lin.bias.grad, **TOL)
        for i, bn in enumerate(m for m in ref if isinstance(m, nn.BatchNorm1d)):
            torch.testing.assert_close(stack.gammas[i].grad[k, 0], bn.weight.grad, **TOL)
            torch.testing.assert_close(stack.betas[i].grad[k, 0], bn.bias.grad, **TOL)


def test_probe_mode_uses_batch_statistics_and_leaves_running_stats_alone():
    stack, refs = make_pair()
    x = torch.randn(16, 8)
    before = [s.mean.clone() for s in stack.stats]
    with torch.no_grad():
        logits = stack(x, "probe")
    for k, ref in enumerate(refs):
        torch.testing.assert_close(logits[k], ref.train()(x), **TOL)
    assert all(torch.equal(b, s.mean) for b, s in zip(before, stack.stats))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        stack(x[:1], "train")


def _trainer(stds, n_bn, seed=3):
    gen = torch.Generator().manual_seed(seed)
    stack = StackedMLP(StackShape(8, 3, 2, 12), list(stds), n_bn=n_bn, generator=gen)
    data = torch.Generator().manual_seed(9)
    x, y = torch.randn(120, 8, generator=data), torch.randint(0, 3, (120,), generator=data)
    return StackedTrainer(stack, x, y, optimizer="sgd", lr=0.1, batch_size=20, generator=gen, sgd_momentum=0.5)


def test_a_diverged_model_stops_and_the_other_trains_unaffected():
    pair, alone = _trainer([0.3, 0.3], n_bn=1), _trainer([0.3], n_bn=1)
    for step in range(1, 9):
        if step == 4:  # model 1 blows up: its logits become infinite, its loss NaN
            with torch.no_grad():
                pair.model.biases[-1][1].fill_(float("inf"))
        loss_pair, _ = pair.step()
        loss_alone, _ = alone.step()
        torch.testing.assert_close(loss_pair[0], loss_alone[0], **TOL)
        assert torch.isfinite(loss_pair[1]) == (step < 4)
    assert pair.diverged_at == [None, 4] and alone.diverged_at == [None]
    assert not pair.all_diverged
    for a, b in zip(pair.model.parameters(), alone.model.parameters()):
        torch.testing.assert_close(a[:1], b, **TOL)
    torch.testing.assert_close(pair.model.stats[0].mean[:, :1], alone.model.stats[0].mean, **TOL)


def test_all_models_diverged():
    trainer = _trainer([0.3, 0.3], n_bn=0)
    with torch.no_grad():
        trainer.model.biases[-1].fill_(float("nan"))
    trainer.step()
    trainer.step()
    assert trainer.diverged_at == [1, 1] and trainer.all_diverged


# ---- probes ----


def test_histogram_equals_numpy_with_outliers_in_the_end_bins():
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(3, 5000, generator=gen) * torch.tensor([[1.0], [3.0], [0.2]])
    edges = torch.linspace(-2.0, 2.5, 41)
    got = histogram(values, edges)
    assert got.shape == (3, 40)
    for row, h in zip(values.numpy(), got.numpy()):
        clipped = np.clip(row, edges[0].item(), edges[-1].item())
        expected, _ = np.histogram(clipped, bins=edges.numpy())
        np.testing.assert_allclose(h, expected / len(row), atol=1e-7)
    assert torch.allclose(got.sum(1), torch.ones(3))


def test_histogram_values_on_and_next_to_edges_follow_numpy():
    edges = torch.stack([torch.linspace(-2.0, 2.0, 41), torch.linspace(1000.0, 1000.5, 41)])
    below = torch.nextafter(edges, torch.tensor(-1e9))
    above = torch.nextafter(edges, torch.tensor(1e9))
    gen = torch.Generator().manual_seed(1)
    values = torch.cat([edges, below, above, edges[:, :1] + torch.rand(2, 500, generator=gen) * 0.6], 1)
    got = histograms(values, edges)
    for row, e, h in zip(values.numpy(), edges.numpy(), got.numpy()):
        expected, _ = np.histogram(np.clip(row, e[0], e[-1]), bins=e)  # bins [e_i, e_i+1), the last closed
        np.testing.assert_allclose(h, expected / len(row), atol=1e-7)


def test_histogram_puts_non_finite_values_in_end_bins_without_failing():
    edges = torch.linspace(0.0, 1.0, 5)
    got = histogram(torch.tensor([[float("-inf"), 0.5, float("inf"), float("nan")]]), edges)
    assert got.sum().item() == pytest.approx(1.0)
    assert got[0, 0].item() == pytest.approx(0.25) and got[0, -1].item() >= 0.25


def test_fixed_edges():
    v = torch.randn(2, 10_000, generator=torch.Generator().manual_seed(0))
    e = fixed_edges(v)
    assert len(e) == 41 and e[0] < -2.8 and e[-1] > 2.8 and e[-1] < 6
    assert fixed_edges(v, "relu")[0].item() == 0.0
    assert fixed_edges(v, "tanh")[[0, -1]].tolist() == [-1.0, 1.0]


def _one_layer(activation: str, unit_bias: float, n_special: int):
    """A 1-hidden-layer stack (no BN) whose first `n_special` units get a large bias."""
    stack = StackedMLP(StackShape(4, 2, 1, 10, activation), [0.5], n_bn=0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        stack.biases[0][0, 0, :n_special] = unit_bias
    return stack


def test_dead_relu_units_are_those_that_are_zero_for_every_probe_sample():
    stack = _one_layer("relu", -100.0, 3)  # 3 of 10 units can never be positive
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    snap = LayerProbe(stack, x).record()
    acts = torch.relu(x @ stack.weights[0][0] + stack.biases[0][0])
    assert snap["dead"][0, 0].item() == pytest.approx((acts <= 0).all(0).float().mean().item())
    assert snap["dead"][0, 0].item() >= 0.3
    assert snap["mean"][0, 0].item() == pytest.approx(acts.mean().item(), rel=1e-5)
    assert snap["std"][0, 0].item() == pytest.approx(acts.std().item(), rel=1e-5)
    assert snap["saturated"][0, 0].item() == 0.0  # ReLU has no saturation
    assert snap["hist_act"].shape == (1, 1, 40)
    assert torch.isnan(snap["grad_hist"]).all()  # no gradient before the first step


def test_saturated_tanh_units_share_of_values_beyond_097():
    stack = _one_layer("tanh", 10.0, 4)  # 4 of 10 units sit at tanh(~10) = 1
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    snap = LayerProbe(stack, x).record()
    acts = torch.tanh(x @ stack.weights[0][0] + stack.biases[0][0])
    assert snap["saturated"][0, 0].item() == pytest.approx((acts.abs() > 0.97).float().mean().item())
    assert snap["saturated"][0, 0].item() >= 0.4
    assert snap["dead"][0, 0].item() == 0.0  # "dead" is defined for ReLU only


def test_probe_histograms_sum_to_one_and_grad_hist_after_a_step():
    stack, _ = make_pair()
    x = torch.randn(64, 8)
    probe = LayerProbe(stack, x)
    stack(x, "train").sum().backward()
    snap = probe.record()
    for q in ("hist_linear", "hist_norm", "hist_act", "grad_hist"):
        assert snap[q].shape == (3, 3, 40)
        torch.testing.assert_close(snap[q].sum(-1), torch.ones(3, 3))
    logg = torch.log10(stack.weights[1].grad[2].abs().flatten() + 1e-30)
    expected, _ = np.histogram(np.clip(logg.numpy(), -10, 1), bins=np.linspace(-10, 1, 41))
    np.testing.assert_allclose(snap["grad_hist"][2, 1].numpy(), expected / logg.numel(), atol=1e-6)


# ---- run store ----


def test_least_recently_used_results_are_dropped_first_when_the_bytes_exceed_the_bound():
    store = RunStore(max_bytes=2000)
    a, b, c = (np.full(200, i, np.float32) for i in range(3))  # 800 bytes each
    store.put("a", a)
    store.put("b", b)
    assert store.get("a") is a  # a is now the most recent
    store.put("c", c)
    assert store.get("b") is None and store.get("a") is a and store.get("c") is c
    store.put("huge", np.zeros(1000, np.float32))  # larger than the whole bound: not kept, nothing dropped
    assert store.get("huge") is None and store.get("a") is a


def test_result_bytes_counts_the_arrays_of_a_result():
    from normviz.experiments import activations

    result = final(activations.run(activations.ActivationsSpec(steps=4, probe_every=2)))
    arrays = [result.loss, result.batch_acc, result.probe_steps, *result.snapshots.values(), result.edges["grad"]]
    arrays += [e for q, es in result.edges.items() if q != "grad" for e in es]
    assert runs.result_bytes(result) == sum(a.nbytes for a in arrays) > 0


def test_throttle_gives_the_run_twice_the_time_the_consumer_took(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(runs.time, "monotonic", lambda: clock[0])
    throttle = Throttle(0.5)
    for now, due in [
        (0.4, False),
        (0.5, True),  # the first partial result after 0.5 s of training
        (1.5, False),
        (3.4, False),
        (3.5, True),  # the consumer drew for 1 s: train 2 s
        (3.6, False),
        (4.0, False),
        (4.2, True),
    ]:  # a quick redraw: back to 0.5 s
        clock[0] = now
        assert throttle.due() == due, now
