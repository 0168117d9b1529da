import math

import pytest
import torch
from torch import nn

from normviz.config import ACTIVATIONS
from normviz.layers import ACTIVATION_FORMS, NORM_KINDS, BatchNorm, LayerNorm, WSConv2d
from normviz.models import MLP, RowRNN, SmallCNN, init_linear_, rows_as_sequence


@pytest.mark.parametrize("init, expected", [("std", 0.05), ("xavier", math.sqrt(1 / 400)), ("he", math.sqrt(2 / 400))])
def test_init_gives_the_requested_std(init, expected):
    layer = nn.Linear(400, 300)
    init_linear_(layer, init, std=0.05, generator=torch.Generator().manual_seed(0))
    assert abs(layer.weight.std().item() / expected - 1) < 0.02
    assert abs(layer.weight.mean().item()) < 0.02 * expected
    assert torch.all(layer.bias == 0)


def test_init_fan_in_of_a_conv_counts_the_kernel():
    conv = nn.Conv2d(20, 300, 5)  # fan_in = 20 * 5 * 5
    init_linear_(conv, "he", generator=torch.Generator().manual_seed(0))
    assert abs(conv.weight.std().item() / math.sqrt(2 / 500) - 1) < 0.02


def test_init_is_reproducible_with_a_generator():
    a, b = nn.Linear(10, 10), nn.Linear(10, 10)
    init_linear_(a, "he", generator=torch.Generator().manual_seed(3))
    init_linear_(b, "he", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.weight, b.weight)


def test_every_activation_a_spec_may_choose_has_its_layer_and_functions():
    assert tuple(ACTIVATION_FORMS) == ACTIVATIONS
    x = torch.randn(4, 6)
    for name, forms in ACTIVATION_FORMS.items():
        expected = forms.module()(x)
        assert torch.equal(forms.fn(x), expected) and torch.equal(forms.in_place(x.clone()), expected), name


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("norm", [k for k in NORM_KINDS if k != "instance"])
@pytest.mark.parametrize("norm_place", ["before", "after"])
def test_mlp_shapes(activation, norm, norm_place):
    model = MLP(64, 10, depth=3, width=20, activation=activation, norm=norm, norm_place=norm_place)
    assert len(model.blocks) == 3
    assert all(
        isinstance(b.act, ACTIVATION_FORMS[activation].module) and isinstance(b.linear, nn.Linear) for b in model.blocks
    )
    y = model(torch.randn(8, 64))
    assert y.shape == (8, 10)
    y.sum().backward()
    assert model.blocks[0].linear.weight.grad.shape == (20, 64)


def test_mlp_norm_place_sets_the_order():
    x = torch.randn(32, 16)
    before = MLP(16, 2, depth=1, width=8, norm="batch", norm_place="before")
    after = MLP(16, 2, depth=1, width=8, norm="batch", norm_place="after")
    assert (before.blocks[0](x) >= 0).all()  # ReLU last
    h = after.blocks[0](x)  # BN last: zero mean per unit over the batch, negatives present
    assert torch.allclose(h.mean(0), torch.zeros(8), atol=1e-5) and (h < 0).any()


def test_mlp_is_reproducible_with_a_generator():
    a = MLP(16, 2, 2, 8, init="std", init_std=0.1, generator=torch.Generator().manual_seed(1))
    b = MLP(16, 2, 2, 8, init="std", init_std=0.1, generator=torch.Generator().manual_seed(1))
    x = torch.randn(4, 16)
    assert torch.equal(a(x), b(x))


def test_mlp_refuses_instance_norm():
    with pytest.raises(ValueError, match="InstanceNorm needs spatial dimensions"):
        MLP(16, 2, 2, 8, norm="instance")


def test_mlp_rejects_unknown_norm_place():
    with pytest.raises(ValueError, match="norm_place"):
        MLP(16, 2, 2, 8, norm="batch", norm_place="middle")


def test_mlp_with_batchnorm_refuses_a_batch_of_one_like_torch():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        MLP(64, 10, 2, 8, norm="batch")(torch.randn(1, 64))


@pytest.mark.parametrize("norm", NORM_KINDS)
@pytest.mark.parametrize("ws", [False, True])
def test_small_cnn_shapes(norm, ws):
    model = SmallCNN(channels=(8, 12), norm=norm, weight_standardization=ws)
    assert all(isinstance(b.linear, WSConv2d) == ws for b in model.blocks)
    y = model(torch.randn(5, 64))
    assert y.shape == (5, 10)
    y.sum().backward()


def test_small_cnn_trains_on_a_batch_of_one_with_batchnorm():
    model = SmallCNN(norm="batch").train()
    y = model(torch.randn(1, 64))  # BN2d still has 8*8 (then 4*4) values per channel
    assert y.shape == (1, 10) and torch.isfinite(y).all()
    assert model.blocks[0].norm.stats.num_batches_tracked == 1


def test_small_cnn_group_count_follows_groups():
    model = SmallCNN(channels=(6, 12), norm="group", groups=4)
    assert [b.norm.num_groups for b in model.blocks] == [3, 4]


def test_rows_as_sequence():
    x = torch.arange(2 * 64.0).reshape(2, 64)
    seq = rows_as_sequence(x, repeat=2)
    assert seq.shape == (2, 16, 8)
    assert torch.equal(seq[1, 3], x[1, 24:32]) and torch.equal(seq[1, 11], x[1, 24:32])


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_row_rnn_shapes(norm):
    model = RowRNN(hidden=16, norm=norm)
    y = model(rows_as_sequence(torch.randn(4, 64)))
    assert y.shape == (4, 10)
    y.sum().backward()
    assert model.w_h.weight.grad.abs().sum() > 0


def test_row_rnn_batchnorm_has_statistics_per_time_step():
    model = RowRNN(hidden=16, norm="batch", max_steps=8)
    assert len(model.norms) == 8 and all(isinstance(n, BatchNorm) for n in model.norms)
    model(rows_as_sequence(torch.randn(4, 64)))
    assert [int(n.stats.num_batches_tracked) for n in model.norms] == [1] * 8
    assert not torch.equal(model.norms[0].stats.mean, model.norms[7].stats.mean)


def test_row_rnn_batchnorm_refuses_steps_it_has_no_statistics_for():
    model = RowRNN(hidden=16, norm="batch", max_steps=8)
    x = rows_as_sequence(torch.randn(4, 64), repeat=2)
    with pytest.raises(ValueError, match="no statistics for time step t=8.*reuse_last_stats=True"):
        model(x)
    assert model(x, reuse_last_stats=True).shape == (4, 10)
    assert int(model.norms[7].stats.num_batches_tracked) == 9  # steps 7..15 share the last BN


def test_row_rnn_layernorm_runs_any_length():
    model = RowRNN(hidden=16, norm="layer", max_steps=8)
    assert len(model.norms) == 1 and isinstance(model.norms[0], LayerNorm)
    assert model(rows_as_sequence(torch.randn(4, 64), repeat=3)).shape == (4, 10)


def test_row_rnn_rejects_other_norms():
    with pytest.raises(ValueError, match="RowRNN norm must be one of"):
        RowRNN(norm="group")
