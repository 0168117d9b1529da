"""The Why BN helps view: each experiment's measures against direct torch computations, its claims on the
default settings, the page spec, the CLI and the page in AppTest."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from live_pages import run_to_final
from streamlit.testing.v1 import AppTest
from torch import nn

from normviz import cli
from normviz.experiments import why_adabn, why_bn, why_landscape, why_lr_range, why_noisy, why_scale
from normviz.experiments.why_common import StackedSGD
from normviz.lessons import why_bn as lesson
from normviz.runs import final
from normviz.stacked import StackedMLP, StackShape, stacked_cross_entropy

torch.set_num_threads(1)
APP = str(Path(__file__).resolve().parents[1] / "app.py")


def small_stack(k=2, n_bn=1, depth=2, width=8, n_in=5, seed=0, eps=1e-5):
    gen = torch.Generator().manual_seed(seed)
    model = StackedMLP(StackShape(n_in, 3, depth, width), [1.0] * k, n_bn=n_bn, weight_init="xavier", generator=gen)
    model.eps = eps
    with torch.no_grad():  # make every model of the stack different, and gamma/beta non-trivial
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    x = torch.randn(32, n_in, generator=gen)
    y = torch.randint(0, 3, (32,), generator=gen)
    return model, x, y


def torch_net(model: StackedMLP, k: int) -> nn.Sequential:
    """Model k of a stack as torch modules (BatchNorm1d in train mode if it has BN)."""
    layers = []
    for i in range(model.shape.depth + 1):
        w, b = model.weights[i][k], model.biases[i][k, 0]
        lin = nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(w.T)
            lin.bias.copy_(b)
        layers.append(lin)
        if i == model.shape.depth:
            break
        if k < model.n_bn:
            bn = nn.BatchNorm1d(w.shape[1], eps=model.eps)
            with torch.no_grad():
                bn.weight.copy_(model.gammas[i][k, 0])
                bn.bias.copy_(model.betas[i][k, 0])
            layers.append(bn)
        layers.append(nn.ReLU())
    return nn.Sequential(*layers).train()


# --- the usable learning-rate range ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lr_range():
    return final(why_lr_range.run(why_lr_range.LrRangeSpec()))


def test_stacked_sgd_gives_every_model_its_own_rate():
    model, x, y = small_stack(k=2, n_bn=0)
    ref = [torch_net(model, k) for k in range(2)]
    rates = torch.tensor([0.1, 0.7])
    opt = StackedSGD(model, rates)
    stacked_cross_entropy(model(x), y).sum().backward()
    opt.step()
    for k, net in enumerate(ref):
        nn.functional.cross_entropy(net(x), y).backward()
        torch.optim.SGD(net.parameters(), lr=float(rates[k])).step()
        torch.testing.assert_close(model.weights[0][k].detach(), net[0].weight.detach().T, atol=1e-6, rtol=1e-5)


def test_bn_widens_the_usable_rates_and_moves_the_best_rate_up(lr_range):
    r = lr_range
    bn, plain = r.usable("BN"), r.usable("no BN")
    assert bn[0] <= plain[0] and bn[1] > plain[1]  # wider at the top, at least as wide at the bottom
    assert r.decades("BN") >= r.decades("no BN") + 0.5
    assert r.best_lr("BN") > r.best_lr("no BN")
    assert any(d is not None for d in r.diverged("no BN"))  # the largest rates diverge without BN
    assert r.acc("BN")[r.lrs == r.best_lr("BN")][0] > 0.9
    notice = lesson.notice(r)
    assert f"from {bn[0]:.3g} to {bn[1]:.3g}" in notice and f"its best rate is {r.best_lr('no BN'):.3g}" in notice


# --- the loss landscape ---------------------------------------------------------------------------------------


def test_landscape_probe_matches_direct_autograd():
    model, x, y = small_stack(k=2, n_bn=1)
    etas = torch.tensor([0.05, 0.2, 0.6])
    template = StackedMLP(model.shape, [1.0] * 6, n_bn=3)
    template.eps = model.eps
    got = why_landscape.probe(model, template, x, y, etas)
    for k in range(2):
        net = torch_net(model, k)
        params = list(net.parameters())
        g = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), params)
        g_norm = torch.sqrt(sum(t.square().sum() for t in g))
        torch.testing.assert_close(got["grad_norm"][k], g_norm, atol=1e-6, rtol=1e-5)
        for e, eta in enumerate(etas):
            with torch.no_grad():
                torch._foreach_add_(params, g, alpha=-float(eta))
            loss = nn.functional.cross_entropy(net(x), y)
            moved = torch.autograd.grad(loss, params)
            with torch.no_grad():
                torch._foreach_add_(params, g, alpha=float(eta))
            change = torch.sqrt(sum((a - b).square().sum() for a, b in zip(moved, g)))
            torch.testing.assert_close(got["loss"][k, e], loss.detach(), atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(got["grad_change"][k, e], change, atol=1e-6, rtol=1e-4)
            torch.testing.assert_close(got["distance"][k, e], eta * g_norm, atol=1e-6, rtol=1e-5)


def test_bn_has_the_narrower_loss_band_on_the_defaults():
    r = final(why_landscape.run(why_landscape.LandscapeSpec()))
    spread = r.mean_spread()
    assert spread[0] * 2 < spread[1]  # BN's band is at most half as wide
    assert np.nanmean(r.grad_change.max(-1), 0)[0] < np.nanmean(r.grad_change.max(-1), 0)[1]
    assert len(r.check_steps) == 10 and r.probe_loss.shape == (10, 2, 8)
    assert f"{spread[0]:.3g} with BN and {spread[1]:.3g} without" in lesson.notice(r)
    lo, hi = r.loss_band()
    assert np.all(lo <= hi)


# --- noisy BN -------------------------------------------------------------------------------------------------


def test_noisy_bn_moves_the_mean_and_scales_the_std_it_says():
    gen = torch.Generator().manual_seed(1)
    model = why_noisy.NoisyStackedMLP(StackShape(5, 3, 1, 16), [1.0] * 3, n_bn=2, generator=gen)
    shift, scale = why_noisy.sample_noise(16, 1.0, 2.0, gen)
    assert shift.abs().max() <= 1 and scale.min() >= 1 and scale.max() <= 2 and shift.std() > 0.1
    h = torch.randn(3, 512, 16, generator=gen) * 3 + 2  # (K, B, C): the same pre-BN values for every model
    h[:] = h[0]
    model.set_noise([(shift, scale)])
    out = model._norm(0, h.clone(), "train", 0, False)
    mean, std = why_noisy.layer_moments(out)  # per model and unit
    torch.testing.assert_close(mean[0], torch.zeros(16), atol=1e-5, rtol=0)  # plain BN: mean 0, std 1
    torch.testing.assert_close(mean[1], shift, atol=1e-5, rtol=0)  # noisy: the mean moved by the shift
    torch.testing.assert_close(std[1], scale * std[0], atol=1e-5, rtol=1e-5)  # and the std scaled
    torch.testing.assert_close(out[2], h[2])  # the no-BN model is untouched
    relu = model._norm(0, h.clone(), "train", 0, False, relu=True)
    torch.testing.assert_close(relu, out.clamp_min(0))  # ReLU comes after the noise
    probe = model._norm(0, h.clone(), "probe", 0, False)
    torch.testing.assert_close(probe[1], probe[0])  # no noise outside training steps


def test_noisy_bn_shifts_more_yet_learns_like_bn():
    r = final(why_noisy.run(why_noisy.NoisySpec()))
    shift = r.mean_shift().mean(1)
    assert shift[1] > 3 * shift[2] and shift[1] > 3 * shift[0]
    assert abs(r.test_acc[1] - r.test_acc[0]) <= why_noisy.CLOSE
    assert r.test_acc[1] - r.test_acc[2] >= why_noisy.FAR
    assert all(r.claims().values())
    notice = lesson.notice(r)
    assert f"{r.test_acc[1]:.1%}" in notice and "is not what makes BN help" in notice
    assert r.quantiles.shape[1:] == (3, r.spec.depth, len(why_noisy.QUANTILES))
    assert np.all(np.diff(r.quantiles, axis=-1) >= 0)  # quantiles in order


# --- scale invariance -----------------------------------------------------------------------------------------


def test_scaling_a_bn_followed_layer_keeps_outputs_and_divides_the_gradient():
    model, x, y = small_stack(k=3, n_bn=3, depth=3)
    check = why_scale.scale_check(model, x, y, 10.0)
    assert check["output_change"].max() < 1e-5 and check["grad_error"].max() < 1e-5
    with_eps = why_scale.scale_check(model, x, y, 10.0, eps=0.1)  # a large ε breaks the identity visibly
    assert with_eps["output_change"].max() > 1e-3
    # independently, in torch (float64, ε ~ 0: torch refuses 0 in training): the same identity
    net = torch_net(model, 0).double()
    net[1].eps = 1e-12
    w, b = net[0].weight.detach(), net[0].bias.detach()

    def output_and_gradient(weight, bias):
        weight = weight.detach().requires_grad_()
        out = net[1:](nn.functional.linear(x.double(), weight, bias))
        return out.detach(), torch.autograd.grad(nn.functional.cross_entropy(out, y), weight)[0]

    out_1, grad_1 = output_and_gradient(w, b)
    out_c, grad_c = output_and_gradient(10 * w, 10 * b)
    torch.testing.assert_close(out_c, out_1, atol=1e-5, rtol=0)
    torch.testing.assert_close(10 * grad_c, grad_1, atol=1e-5 * grad_1.abs().max().item(), rtol=0)
    assert abs((grad_1 * w).sum()) < 1e-8 * grad_1.norm() * w.norm()  # the gradient is orthogonal to w


@pytest.fixture(scope="module")
def scale_default():
    return final(why_scale.run(why_scale.ScaleSpec()))


def test_weight_decay_raises_the_effective_rate_not_the_function(scale_default):
    r = scale_default
    last = r.weight_norm[-1]
    assert np.all(last[why_scale.DECAYED] < 0.7 * last[0])  # decay shrank every layer's weights
    eff = r.effective_lr()[-1]
    assert np.all(eff[why_scale.DECAYED] > 2 * eff[0])
    assert r.agreement == 1.0  # the matched network computes the decayed one's function
    assert np.nanmax(np.abs(r.grad_cos)) < 1e-3  # the gradient is orthogonal to w
    assert r.check["output_change"].max() < 1e-5 and r.check["grad_error"].max() < 1e-5
    assert "changed the rate, not the function" in lesson.notice(r) and f"{r.agreement:.1%}" in lesson.notice(r)
    assert len(r.check_table()) == r.spec.depth


def test_with_torchs_eps_the_matched_network_drifts():
    spec = lesson.PRESETS["ε breaks exact scale invariance"].spec(why_bn.WhyBNSpec).sub()
    r = final(why_scale.run(spec))
    assert r.agreement < lesson.SAME_FUNCTION
    assert "drift apart" in lesson.notice(r)


# --- AdaBN ----------------------------------------------------------------------------------------------------


def test_shifts_do_what_they_say():
    x = torch.zeros(1, 64)
    x[0, 8 * 3 + 2] = 1.0  # row 3, column 2
    spec = why_adabn.AdaBNSpec
    assert why_adabn.apply_shift(x, spec(shift="brightness", brightness=0.25)).min() == 0.25
    contrast = why_adabn.apply_shift(x, spec(shift="contrast", contrast=0.5))
    assert contrast[0, 26] == 0.75 and contrast[0, 0] == 0.25
    assert why_adabn.apply_shift(x, spec(shift="invert"))[0, 26] == 0.0
    moved = why_adabn.apply_shift(x, spec(shift="translate", pixels=2)).reshape(8, 8)
    assert moved[3, 4] == 1.0 and moved.sum() == 1.0


def test_adabn_statistics_are_torchs_after_reset_and_one_cumulative_pass():
    model, x, _ = small_stack(k=2, n_bn=1, depth=3)
    adapted = why_adabn.adapt(model, x)
    net = torch_net(model, 0)
    bns = [m for m in net if isinstance(m, nn.BatchNorm1d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    with torch.no_grad():
        net(x)
    for stats, bn in zip(adapted.stats, bns):
        torch.testing.assert_close(stats.mean[0, 0], bn.running_mean, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(stats.var[0, 0], bn.running_var, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.stats[0].mean, torch.zeros_like(model.stats[0].mean))  # original untouched


def test_adabn_recovers_a_contrast_change_with_few_samples():
    r = final(why_adabn.run(why_adabn.AdaBNSpec()))
    assert r.spec.shift == "contrast"
    assert r.shifted_acc[0] < r.clean_acc[0] - 0.5  # the training statistics no longer fit
    assert r.pool_acc > r.clean_acc[0] - 0.03 and r.batch_stats_acc > r.clean_acc[0] - 0.05
    assert r.adabn_helps() and r.samples_needed() <= 256
    assert r.adabn_at(32) > r.clean_acc[0] - 0.1  # the preset: "a few dozen" images bring it back
    notice = lesson.notice(r)
    assert f"{r.samples_needed()} images already come within" in notice and f"{r.pool_acc:.1%}" in notice


def test_adabn_cannot_undo_an_inversion():
    spec = lesson.PRESETS["inverted digits: statistics are not enough"].spec(why_bn.WhyBNSpec).sub()
    r = final(why_adabn.run(spec))
    assert not r.adabn_helps() and max(r.pool_acc, r.batch_stats_acc, r.shifted_acc[0]) < 0.3
    assert "does not help this shift" in lesson.notice(r)


# --- the page spec, captions, CLI and the page ----------------------------------------------------------------


def test_page_spec_gives_each_view_its_own_spec_and_round_trips():
    for view in why_bn.VIEWS:
        spec = why_bn.WhyBNSpec(view=view, steps=40, seed=3)
        sub = spec.sub()
        assert type(sub) is why_bn.VIEW_SPECS[view] and sub.steps == 40 and sub.seed == 3
        assert sub == type(sub)(steps=40, seed=3)  # the page's defaults are each experiment's own
        assert why_bn.WhyBNSpec.from_query(spec.to_query()) == (spec, [])
    for name, preset in lesson.PRESETS.items():
        assert preset.spec(why_bn.WhyBNSpec).sub(), name


@pytest.mark.parametrize(
    "view, words",
    [
        ("lr-range", ["Santurkar", "VGG", "CIFAR-10", "Ioffe"]),
        ("landscape", ["Santurkar", "VGG", "CIFAR-10", "training batch"]),
        ("noisy", ["Santurkar", "VGG", "CIFAR-10", "U(1, 2)"]),
        ("scale", ["van Laarhoven", "Zhang", "CIFAR"]),
        ("adabn", ["Li et al.", "Office-31", "Inception-BN"]),
    ],
)
def test_captions_name_the_paper_and_the_differences(view, words):
    text = lesson.caption(why_bn.WhyBNSpec(view=view))
    assert all(w in text for w in words) and "digits" in text


@pytest.mark.parametrize("view", why_bn.VIEWS)
def test_cli_writes_json(view, tmp_path):
    out = tmp_path / "out.json"
    assert cli.main(["why_bn", "--view", view, "--steps", "20", "--depth", "2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["spec"]["steps"] == 20 and data["steps_done"] == 20


def test_cli_rejects_a_bad_value(capsys):
    assert cli.main(["why_bn", "--view", "lr-range", "--lr-min", "5", "--lr-max", "1"]) == 2
    assert "lr_min" in capsys.readouterr().err


@pytest.mark.parametrize("view", why_bn.VIEWS)
def test_page_draws_every_view_with_its_notice(view):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.query_params.clear()
    at.query_params["view"] = view
    at.query_params["steps"] = "40"
    run_to_final(at.switch_page("pages/why_bn.py"))
    assert not at.exception, [e.value for e in at.exception]
    assert at.get("plotly_chart") and at.success  # the charts and the notice of the finished run
    assert at.query_params["view"] == view and at.query_params["steps"] == "40"
