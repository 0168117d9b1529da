"""Every normalization layer against the torch module it mirrors: train and eval, forward and backward."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from normviz.layers import (
    NORM_KINDS,
    BatchNorm,
    BatchRenorm,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    WSConv2d,
    make_norm,
    renorm_correction,
)

TOL = {"atol": 1e-6, "rtol": 1e-5}
SHAPES = [(16, 6), (8, 6, 5), (4, 6, 5, 3)]  # (B, C), (B, C, L), (B, C, H, W)
BN_TORCH = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}


def randomize_affine(*modules, seed=0):
    """Same non-trivial gamma/beta in every module, so their gradients say something."""
    g = torch.Generator().manual_seed(seed)
    weight = 1 + 0.5 * torch.randn(modules[0].weight.shape, generator=g)
    bias = torch.randn(modules[0].bias.shape, generator=g)
    with torch.no_grad():
        for m in modules:
            m.weight.copy_(weight)
            m.bias.copy_(bias)


def forward_backward(module, x, grad_out):
    x = x.clone().requires_grad_()
    module.zero_grad()
    y = module(x)
    y.backward(grad_out)
    return y, x.grad, module.weight.grad, module.bias.grad


def upstream_grad(x, seed=0):
    """A random dL/dy at the scale of a mean loss (1/N per value), so summed gradients stay O(1) in float32."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(x.shape, generator=g, dtype=x.dtype) / (x.numel() // x.shape[1])


def assert_same(ours, ref, x):
    """Outputs and the gradients of input, weight and bias agree for one random upstream gradient."""
    grad_out = upstream_grad(x)
    for a, b in zip(forward_backward(ours, x, grad_out), forward_backward(ref, x, grad_out)):
        assert_close(a, b, **TOL)


def batches(shape, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    per_channel = (1, -1, *[1] * (len(shape) - 2))
    return [
        3 * torch.randn(shape, generator=g) + torch.randn(shape[1:2], generator=g).reshape(per_channel)
        for _ in range(n)
    ]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm_matches_torch_over_steps(shape, momentum):
    C = shape[1]
    ours = BatchNorm(C, momenta=(), cma=True) if momentum is None else BatchNorm(C, momenta=(momentum,))
    ref = BN_TORCH[len(shape)](C, momentum=momentum)
    randomize_affine(ours, ref)
    for x in batches(shape, 4):
        assert_same(ours, ref, x)
        assert_close(ours.stats.mean[0], ref.running_mean, **TOL)
        assert_close(ours.stats.var[0], ref.running_var, **TOL)
    assert ours.stats.num_batches_tracked == ref.num_batches_tracked == 4
    ours.eval(), ref.eval()
    assert_same(ours, ref, batches(shape, 1, seed=1)[0])


@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_stats_match_torch_in_float64(momentum):
    """The cumulative average's 1/t is computed in the buffers' dtype: float32 would leave ~1e-7 here."""
    ours = (BatchNorm(5, momenta=(), cma=True) if momentum is None else BatchNorm(5, momenta=(momentum,))).double()
    ref = nn.BatchNorm1d(5, momentum=momentum, dtype=torch.float64)
    for x in batches((16, 5), 7):
        ours(x.double()), ref(x.double())
    assert_close(ours.stats.mean[0], ref.running_mean, atol=1e-14, rtol=1e-14)
    assert_close(ours.stats.var[0], ref.running_var, atol=1e-14, rtol=1e-14)


def test_running_stats_for_several_momenta_equal_separate_torch_bns():
    momenta = (0.01, 0.1, 0.5, 1.0)
    ours = BatchNorm(6, momenta=momenta, cma=True)
    refs = [nn.BatchNorm2d(6, momentum=m) for m in momenta + (None,)]
    for x in batches((4, 6, 5, 3), 5):
        y = ours(x)
        for ref in refs:
            assert_close(y, ref(x), **TOL)
    for i, ref in enumerate(refs):
        assert_close(ours.stats.mean[i], ref.running_mean, **TOL)
        assert_close(ours.stats.var[i], ref.running_var, **TOL)
        ours.eval_row = i
        ours.eval(), ref.eval()
        x = batches((4, 6, 5, 3), 1, seed=9)[0]
        assert_close(ours(x), ref(x), **TOL)


@pytest.mark.parametrize("make", [nn.BatchNorm1d, BatchNorm, BatchRenorm])
def test_batch_of_one_refused_in_train_mode_with_torchs_message(make):
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        make(3)(torch.randn(1, 3))


@pytest.mark.parametrize("make", [nn.BatchNorm2d, BatchNorm])
def test_batch_of_one_image_is_accepted_when_it_has_spatial_positions(make):
    y = make(3)(torch.randn(1, 3, 2, 2))
    assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("groups", [1, 2, 3, 6])
@pytest.mark.parametrize("train", [True, False])
def test_groupnorm_matches_torch(shape, groups, train):
    # a group of one or two values is ill-conditioned: float32 rounding, amplified by 1/sqrt(eps), exceeds 1e-6
    # (torch even returns ~1e-4 instead of 0 for one value per group), so those cases are compared in float64
    small_groups = math.prod(shape[1:]) // groups < 4
    dtype = torch.float64 if small_groups else torch.float32
    ours, ref = GroupNorm(groups, shape[1]).to(dtype), nn.GroupNorm(groups, shape[1]).to(dtype)
    randomize_affine(ours, ref)
    ours.train(train), ref.train(train)
    for x in batches(shape, 2):
        assert_same(ours, ref, x.to(dtype))


def test_groupnorm_rejects_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"):
        GroupNorm(4, 6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("train", [True, False])
def test_layernorm_is_groupnorm_with_one_group(shape, train):
    # torch's LayerNorm over (C, H, W) would carry a (C, H, W) affine; ours is per channel like group_norm(x, 1)
    ours, ref = LayerNorm(shape[1]), nn.GroupNorm(1, shape[1])
    randomize_affine(ours, ref)
    ours.train(train), ref.train(train)
    assert_same(ours, ref, batches(shape, 1)[0])


def test_layernorm_on_features_matches_torch_layernorm():
    ours, ref = LayerNorm(6), nn.LayerNorm(6)
    randomize_affine(ours, ref)
    assert_same(ours, ref, batches((16, 6), 1)[0])


@pytest.mark.parametrize("train", [True, False])
def test_instancenorm_matches_torch(train):
    ours, ref = InstanceNorm(6), nn.InstanceNorm2d(6, affine=True)
    randomize_affine(ours, ref)
    ours.train(train), ref.train(train)
    for x in batches((4, 6, 5, 3), 2):
        assert_same(ours, ref, x)


@pytest.mark.parametrize("shape", [(16, 6), (4, 6, 1, 1)])
def test_instancenorm_needs_spatial_positions(shape):
    with pytest.raises(ValueError, match="InstanceNorm needs spatial dimensions"):
        InstanceNorm(6)(torch.randn(shape))


def test_renorm_correction_clips_at_both_ends():
    running_mean, running_std = torch.zeros(5), torch.full((5,), 2.0)
    batch_std = torch.tensor([0.1, 1.0, 2.0, 5.0, 100.0], requires_grad=True)
    batch_mean = torch.tensor([-100.0, -4.0, 0.0, 6.0, 100.0], requires_grad=True)
    r, d = renorm_correction(batch_mean, batch_std, running_mean, running_std, rmax=2.0, dmax=2.5)
    assert_close(r, torch.tensor([0.5, 0.5, 1.0, 2.0, 2.0]))
    assert_close(d, torch.tensor([-2.5, -2.0, 0.0, 2.5, 2.5]))
    assert not r.requires_grad and not d.requires_grad


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum", [0.01, 0.1])
def test_batch_renorm_without_room_is_batchnorm(shape, momentum):
    C = shape[1]
    ours, ref = BatchRenorm(C, momentum=momentum, rmax=1.0, dmax=0.0), BN_TORCH[len(shape)](C, momentum=momentum)
    randomize_affine(ours, ref)
    for x in batches(shape, 3):
        assert_same(ours, ref, x)
        assert_close(ours.stats.mean[0], ref.running_mean, **TOL)
        assert_close(ours.stats.var[0], ref.running_var, **TOL)
    ours.eval(), ref.eval()
    assert_same(ours, ref, batches(shape, 1, seed=1)[0])


def test_batch_renorm_unclipped_trains_on_running_statistics_with_constant_r_d():
    # unclipped, x_hat * r + d is exactly the running-statistics normalisation eval mode uses
    ours, bn = BatchRenorm(6, momentum=0.3, rmax=1e6, dmax=1e6), nn.BatchNorm2d(6)
    randomize_affine(ours, bn)
    xs = batches((4, 6, 5, 3), 3)
    ours(xs[0])  # move the running statistics away from (0, 1)
    x = xs[1]
    ours.eval()
    y_eval = ours(x)
    ours.train()
    running_mean, running_var = (s[0].clone() for s in (ours.stats.mean, ours.stats.var))
    grad_out = upstream_grad(x)
    y, gx, _, _ = forward_backward(ours, x, grad_out)
    _, gx_bn, _, _ = forward_backward(bn, x, grad_out)
    assert_close(y, y_eval, **TOL)
    var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
    assert_close(ours.last_r, torch.sqrt((var + 1e-5) / (running_var + 1e-5)), **TOL)
    assert_close(ours.last_d, (mean - running_mean) / torch.sqrt(running_var + 1e-5), **TOL)
    # r and d are constants for backprop, so the input gradient is BN's scaled by r
    assert_close(gx, gx_bn * ours.last_r.reshape(1, -1, 1, 1), **TOL)


def test_batch_renorm_clips_r_and_d_in_the_layer():
    # fresh running statistics: mean 0, var 1
    spread = BatchRenorm(2, rmax=3.0, dmax=5.0)
    spread(torch.tensor([[-100.0, -0.01], [100.0, 0.01]]))  # batch std 100 and 0.01, mean 0
    assert_close(spread.last_r, torch.tensor([3.0, 1 / 3]))
    assert_close(spread.last_d, torch.zeros(2))
    shifted = BatchRenorm(2, rmax=3.0, dmax=5.0)
    shifted(torch.tensor([[50.0, -50.0], [52.0, -52.0]]))  # batch mean 51 and -51
    assert_close(shifted.last_d, torch.tensor([5.0, -5.0]))


def test_batch_renorm_rejects_rmax_below_one():
    with pytest.raises(ValueError, match="rmax >= 1"):
        BatchRenorm(3, rmax=0.5)


def test_ws_conv_uses_standardised_filters():
    conv = WSConv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    conv.double()
    w = conv.weight.detach().numpy().reshape(4, -1)
    w_hat = (w - w.mean(1, keepdims=True)) / (w.var(1, keepdims=True) + 1e-5) ** 0.5
    expected = F.conv2d(x, torch.from_numpy(w_hat).reshape(conv.weight.shape), conv.bias, padding=1)
    assert_close(conv(x), expected)


def test_ws_conv_ignores_per_filter_scale_and_shift_of_its_weights():
    conv = WSConv2d(3, 4, 3, padding=1).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.normal_()  # unit variance, so eps barely counts
    y = conv(x)
    with torch.no_grad():
        conv.weight.mul_(torch.tensor([2.0, 3.0, 5.0, 7.0], dtype=torch.float64).reshape(-1, 1, 1, 1)).add_(1.5)
    assert_close(conv(x), y, atol=1e-4, rtol=1e-4)  # only the eps term notices the scale


@pytest.mark.parametrize(
    "kind, cls",
    [
        ("none", nn.Identity),
        ("batch", BatchNorm),
        ("layer", LayerNorm),
        ("instance", InstanceNorm),
        ("group", GroupNorm),
        ("renorm", BatchRenorm),
    ],
)
def test_make_norm_builds_every_kind(kind, cls):
    assert kind in NORM_KINDS
    assert type(make_norm(kind, 8)) is cls


@pytest.mark.parametrize("channels, groups, expected", [(8, 4, 4), (6, 4, 3), (2, 4, 2), (7, 4, 1), (32, 32, 32)])
def test_make_norm_group_count_divides_the_channels(channels, groups, expected):
    assert make_norm("group", channels, groups=groups).num_groups == expected


def test_make_norm_passes_keyword_arguments_on():
    assert make_norm("batch", 4, momenta=(0.5, 0.01)).stats.momenta == (0.5, 0.01)
    assert make_norm("renorm", 4, rmax=2.0).rmax == 2.0


def test_make_norm_unknown_kind_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid kinds.*'batch'.*'renorm'"):
        make_norm("batchnorm", 4)


# --- RMSNorm --------------------------------------------------------------------------------------------------
from normviz.layers import RMSNorm  # noqa: E402


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps", [None, 1e-5])
def test_rmsnorm_matches_torch(shape, eps):
    """torch.nn.RMSNorm over (C, *spatial) with gamma repeated over positions: same output and input gradient,
    and torch's per-position gamma gradient summed over the positions is ours."""
    c, spatial = shape[1], shape[2:]
    ours, ref = RMSNorm(c, eps=eps), nn.RMSNorm(shape[1:], eps=eps)
    gamma = 1 + 0.5 * torch.randn(c, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours.weight.copy_(gamma)
        ref.weight.copy_(gamma.reshape(c, *[1] * len(spatial)).expand(shape[1:]))
    x = batches(shape, 1)[0]
    grad_out = upstream_grad(x)
    outputs = []
    for module in (ours, ref):
        xi = x.clone().requires_grad_()
        y = module(xi)
        y.backward(grad_out)
        outputs.append((y, xi.grad, module.weight.grad.reshape(c, -1).sum(1)))
    for a, b in zip(*outputs):
        assert_close(a, b, **TOL)


def test_rmsnorm_keeps_the_mean_that_layernorm_removes():
    x = batches((16, 6), 1)[0] + 5
    y = RMSNorm(6, affine=False)(x)
    assert_close(y.square().mean(1), torch.ones(16), **TOL)  # unit root mean square per sample
    assert y.mean(1).abs().min() > 0.5  # the mean is scaled, not subtracted
