"""Simulated SyncBN equals BatchNorm on the whole batch; per-worker BN equals BatchNorm on each sub-batch."""

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from normviz.experiments.norm_zoo import build
from normviz.experiments.sync_bn import SyncBNSpec, WorkerBatchNorm, distributed, run, statistic_noise
from normviz.lessons.alternatives import messages
from normviz.runs import final

TOL = {"atol": 1e-5, "rtol": 1e-5}
SHAPES = [(12, 5), (8, 3, 4, 4)]  # (W*b, C) and (W*b, C, H, W)
BN = {2: nn.BatchNorm1d, 4: nn.BatchNorm2d}


def pair(shape, workers, sync, seed=0):
    """A WorkerBatchNorm and a torch BN with the same random gamma/beta."""
    ours, ref = WorkerBatchNorm(shape[1], workers, sync), BN[len(shape)](shape[1])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in (ours, ref):
            m.weight.copy_(1 + torch.randn(shape[1], generator=torch.Generator().manual_seed(seed)))
            m.bias.copy_(torch.randn(shape[1], generator=torch.Generator().manual_seed(seed + 1)))
    return ours, ref, g


def batches(shape, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) * 3 + 2 for _ in range(n)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("workers", [2, 4])
def test_sync_bn_is_batch_norm_on_the_full_batch(shape, workers):
    ours, ref, _ = pair(shape, workers, sync=True)
    for x in batches(shape, 3):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), ref(xb)
        assert_close(ya, yb, **TOL)
        dy = torch.randn(shape, generator=torch.Generator().manual_seed(1)) / x.shape[0]
        ya.backward(dy)
        yb.backward(dy)
        assert_close(xa.grad, xb.grad, **TOL)
        assert_close(ours.weight.grad, ref.weight.grad, **TOL)
        assert_close(ours.bias.grad, ref.bias.grad, **TOL)
    assert_close(ours.stats.mean[0], ref.running_mean, **TOL)
    assert_close(ours.stats.var[0], ref.running_var, **TOL)  # unbiased over all W*b*H*W values, as torch
    ours.eval()
    ref.eval()
    x = batches(shape, 1, seed=9)[0]
    assert_close(ours(x), ref(x), **TOL)


@pytest.mark.parametrize("shape", SHAPES)
def test_per_worker_bn_normalises_each_sub_batch_alone_and_keeps_worker_0s_running_stats(shape):
    workers = 2
    ours, _, _ = pair(shape, workers, sync=False)
    refs = [pair(shape, workers, sync=False)[1] for _ in range(workers)]
    for x in batches(shape, 3):
        y = ours(x)
        for w, part in enumerate(x.chunk(workers)):
            assert_close(y.chunk(workers)[w], refs[w](part), **TOL)
    assert_close(ours.stats.mean[0], refs[0].running_mean, **TOL)
    assert_close(ours.stats.var[0], refs[0].running_var, **TOL)
    assert not torch.allclose(refs[0].running_mean, refs[1].running_mean)


def test_per_worker_bn1d_refuses_one_sample_per_worker_like_torch():
    bn = WorkerBatchNorm(4, workers=3, sync=False)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        bn(torch.randn(3, 4))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(4)(torch.randn(1, 4))
    assert WorkerBatchNorm(4, workers=3, sync=True)(torch.randn(3, 4)).shape == (3, 4)  # 3 values: fine
    assert WorkerBatchNorm(4, workers=3, sync=False)(torch.randn(3, 4, 2, 2)).shape == (3, 4, 2, 2)  # 4 each


def test_a_batch_that_does_not_split_is_an_error():
    with pytest.raises(ValueError, match="does not split into 4 equal sub-batches"):
        WorkerBatchNorm(2, workers=4, sync=True)(torch.randn(6, 2))


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_distributed_keeps_the_models_weights_and_outputs(model):
    plain = build(model, "batch", 4, seed=3)
    synced = distributed(build(model, "batch", 4, seed=3), workers=4, sync=True)
    assert all(isinstance(b.norm, WorkerBatchNorm) for b in synced.blocks)
    x = torch.randn(16, 64)
    assert_close(synced(x), plain(x), **TOL)


def test_statistic_noise_of_independent_values_is_one_over_root_m():
    h = torch.randn(5000, 6, generator=torch.Generator().manual_seed(0))
    mean_err, var_err = statistic_noise(h, [1, 4, 16, 64], 1000, torch.Generator().manual_seed(1))
    np.testing.assert_allclose(mean_err, 1 / np.sqrt([1, 4, 16, 64]), rtol=0.06)  # (m << N: no finite-N effect)
    assert var_err[0] == pytest.approx(1.0)  # one value: variance 0, a 100% error
    # the biased variance of m normal values is var * chi2(m - 1) / m
    rng = np.random.default_rng(0)
    expected = [np.median(np.abs(rng.chisquare(m - 1, 200_000) / m - 1)) for m in (4, 16, 64)]
    np.testing.assert_allclose(var_err[1:], expected, rtol=0.1)


def test_run_refuses_b1_per_worker_for_the_mlp_and_trains_syncbn():
    r = final(run(SyncBNSpec(model="mlp", workers=4, sub_batches=(1, 4), steps=30, lr=0.01)))
    assert r.done and r.b_done == 2
    assert "Expected more than 1 value per channel" in r.notes["local b=1"]
    assert messages(r) == [f"Per-worker BN, b = 1: torch refuses to train: “{r.notes['local b=1']}”"]
    assert np.isnan(r.test_acc[0, 0]) and 0.2 < r.test_acc[1, 0] <= 1  # SyncBN over 4 samples learns
    assert np.all(np.isfinite(r.test_acc[:, 1]))
    assert np.all(r.noise_mean[0] > r.noise_mean[1])  # b values are noisier than W*b
    assert r.noise_mean[0, 1] == pytest.approx(0.5, rel=0.2)  # ~1/sqrt(4) for the MLP's first layer
    out = json.loads(json.dumps(r.summary(), allow_nan=True))
    assert out["workers"] == 4 and out["values_per_channel"] == [1, 4]


def test_snippet_runs_and_shows_syncbn_is_full_batch_bn(capsys):
    from normviz.lessons.alternatives import pytorch_snippet

    exec(compile(pytorch_snippet(SyncBNSpec()), "snippet", "exec"), {})
    out = capsys.readouterr().out
    assert "SyncBN == BN on the full batch: True" in out and "per-worker BN == BN on the full batch: False" in out


@pytest.mark.parametrize("shape", [(64, 5), (16, 3, 4, 4)])
@pytest.mark.parametrize("mean", [0.0, 1000.0])
def test_sync_bn_combines_worker_statistics_stably(shape, mean):
    """Mean 1000, std 1: S2/N - mu^2 loses everything in float32 (0.24 off); the parallel combination does not."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3)) + mean
    dy = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    for dtype in (torch.float32, torch.float64):
        ours, ref = WorkerBatchNorm(shape[1], 8, sync=True).to(dtype), BN[len(shape)](shape[1]).to(dtype)
        exact = BN[len(shape)](shape[1]).double()  # float64 on the same (float32-rounded) inputs
        xa, xb, xe = (x.to(d).clone().requires_grad_() for d in (dtype, dtype, torch.float64))
        ya, yb, ye = ours(xa), ref(xb), exact(xe)
        for y in (ya, yb, ye):
            y.backward(dy.to(y.dtype))
        if dtype == torch.float64:
            assert_close(ya, yb, atol=1e-12, rtol=0)
            assert_close(xa.grad, xb.grad, atol=1e-12, rtol=0)
            assert_close(ours.stats.var[0], ref.running_var, atol=1e-12, rtol=0)
            continue
        # float32: as close to the exact answer as torch's own BatchNorm (its inputs carry 6e-5 rounding at 1000)
        err_ours, err_torch = (ya.double() - ye).abs().max(), (yb.double() - ye).abs().max()
        assert err_ours <= max(2 * err_torch, 1e-6)
        assert (xa.grad.double() - xe.grad).abs().max() <= max(2 * (xb.grad.double() - xe.grad).abs().max(), 1e-6)
        tol = 1e-6 if mean == 0 else 2e-4
        assert_close(ya, yb, atol=tol, rtol=0)
        assert_close(xa.grad, xb.grad, atol=tol, rtol=0)
