"""What the Why BN helps page says and draws around each of its five experiments: what each measures and
how it differs from the paper it mirrors, its charts, what a finished run found (`notice`), the formulas, its
presets and each experiment's PyTorch snippet."""

from __future__ import annotations

import math

import numpy as np

from normviz import snippets
from normviz.config import Preset
from normviz.experiments import why_adabn
from normviz.experiments.why_adabn import CLOSE, AdaBNResult, AdaBNSpec
from normviz.experiments.why_bn import WhyBNSpec
from normviz.experiments.why_common import DIVERGED_LOSS, digits
from normviz.experiments.why_landscape import LandscapeResult, LandscapeSpec
from normviz.experiments.why_lr_range import TRAINS_AT, LrRangeResult, LrRangeSpec
from normviz.experiments.why_noisy import NoisyResult, NoisySpec
from normviz.experiments.why_scale import DECAYED, MATCHED, ScaleResult, ScaleSpec
from normviz.figures import why_bn as figs
from normviz.panels import Chart, Panel, Table, Text, diverged
from normviz.views import Part


def caption(spec) -> str:
    """What a view measures, what it mirrors and how it differs from the paper's set-up (`spec`: the page's, or
    one experiment's)."""
    s = spec.sub() if isinstance(spec, WhyBNSpec) else spec
    view = next(v for v, cls in WhyBNSpec.VIEW_SPECS.items() if type(s) is cls)
    data = digits(s.seed)
    n_test = len(data.x_test)
    net = (
        f"a {s.depth}x{s.width} ReLU MLP (Xavier init) on the 8x8 digits ({len(data.x_train):,} to train, "
        f"{n_test} to test)"
    )
    if view == "lr-range":
        return (
            f"Each point is one network after {s.steps} steps of plain SGD, batch {s.batch_size}: {net}, with and "
            f"without BN, at {s.rates} rates from {s.lr_min:g} to {s.lr_max:g}; all {2 * s.rates} networks start "
            "from one draw of weights and see the same batches, in one stacked computation. Left: test accuracy "
            "in eval mode (none: diverged). Right: the step at which the loss passed 10x chance or became "
            "infinite. The claim that BN allows higher learning rates comes from Ioffe & Szegedy (2015); "
            "Santurkar et al. (2018) showed it on VGG on CIFAR-10, much larger than this."
        )
    if view == "landscape":
        etas = s.etas()
        return (
            f"Every {s.check_every} steps, on that step's training batch in train mode (batch statistics, running "
            f"statistics untouched), we take the gradient g and evaluate the loss and the gradient at θ − ηg for "
            f"{s.step_sizes} step sizes η from {etas[0]:.3g} to {etas[-1]:.3g}. Left: lowest to highest loss. "
            "Middle: ‖∇L(θ − ηg) − ∇L(θ)‖ (gradient predictiveness), lowest to highest. Right: the effective "
            "β-smoothness, the largest ‖∇L(θ − ηg) − ∇L(θ)‖/‖ηg‖. This mirrors Santurkar et al. (2018), who "
            f"measured it on VGG on CIFAR-10; here {net}, SGD at lr {s.lr:g}, {s.steps} steps."
        )
    if view == "noisy":
        return (
            f"The noisy network multiplies each unit after every BN layer by a scale from U(1, {s.noise_scale:g}) "
            f"and shifts it by U(−{s.noise_mean:g}, {s.noise_mean:g}), both drawn afresh every training step (no "
            "noise at test time). Top: quantiles (5-95%, 25-75%, median) of the chosen layer's output, what the "
            "next layer sees, on each training batch. Bottom left: how far that distribution moves per step (the "
            "change of each unit's mean plus that of its std, mean over units and steps). This mirrors the noisy "
            "BN experiment of Santurkar et al. (2018) on VGG on CIFAR-10, whose noise had a random non-zero mean "
            f"and non-unit variance; here {net}, SGD at lr {s.noisy_lr:g}. Test accuracy: the {n_test} test images as "
            "one batch (batch statistics), so that noise-trained running statistics do not decide it."
        )
    if view == "scale":
        return (
            f"Three BN networks from the same weights on the same batches ({net}, SGD at lr {s.lr:g}, BN's ε = "
            f"{s.bn_eps:g}): no weight decay; weight decay λ = {s.weight_decay:g} on the hidden (BN-followed) "
            "weights; no decay, with each hidden layer's rate set every step so that its effective rate matches "
            "the decayed one's. Thin lines: one per hidden layer. The argument is van Laarhoven's (2017); Zhang et "
            "al. (2019) measured it on convolutional networks on CIFAR, larger than this MLP. The live check "
            "(below) runs in float64 on the final networks, 256 training images, batch statistics."
        )
    return (
        f"{net}, pixels in [0, 1], SGD at lr {s.lr:g} for {s.steps} steps; the shift is applied to the test images. "
        "AdaBN re-estimates every BN layer's mean and variance from unlabelled shifted training images (none of "
        f"them in the test set), with the layers before already adapted; the band spans {why_adabn.DRAWS} random "
        "draws per sample count. Li et al. (2016) did this on real domain shifts (e.g. the Office-31 photos) "
        "with an Inception-BN network; here the shift is synthetic and the network small."
    )


FORMULAS = {
    "lr-range": [r"\theta_{t+1}=\theta_t-\eta\,\nabla L_{B_t}(\theta_t)\quad\text{for each }\eta\text{ of the grid}"],
    "landscape": [
        r"\text{band: }\big[\min_\eta L(\theta-\eta g),\ \max_\eta L(\theta-\eta g)\big],\qquad g=\nabla L(\theta)",
        r"\text{predictiveness: }\|\nabla L(\theta-\eta g)-\nabla L(\theta)\|,\qquad "
        r"\beta_{\text{eff}}=\max_\eta\frac{\|\nabla L(\theta-\eta g)-\nabla L(\theta)\|}{\|\eta g\|}",
    ],
    "noisy": [
        r"y'_{c}=s_{t,c}\,(\gamma_c\hat x_c+\beta_c)+m_{t,c},\qquad s_{t,c}\sim U(1,s),\ m_{t,c}\sim U(-m,m)",
    ],
    "scale": [
        r"\mathrm{BN}(c\,Wx)=\mathrm{BN}(Wx)\ \Rightarrow\ \nabla_{cW}L=\tfrac1c\nabla_W L,\qquad "
        r"\langle\nabla_W L,W\rangle=0",
        r"W_{t+1}=(1-\eta\lambda)W_t-\eta\nabla L\ \Rightarrow\ \text{direction turns at }"
        r"\eta_{\text{eff}}=\frac{\eta}{(1-\eta\lambda)\|W_t\|^2}",
    ],
    "adabn": [
        r"\text{AdaBN: }\mu_\ell,\sigma^2_\ell\leftarrow\text{mean, var of layer }\ell\text{'s input on "
        r"the shifted images, layer by layer}",
    ],
}


# --- what a finished run found, with its numbers ------------------------------------------------------------


SAME_FUNCTION = 0.99  # agreement above which the scale notice calls two networks the same function


def notice(r) -> str:
    """What a finished run of one of the five experiments found, in words with its numbers."""
    found = {
        LrRangeResult: _lr_range_notice,
        LandscapeResult: _landscape_notice,
        NoisyResult: _noisy_notice,
        ScaleResult: _scale_notice,
        AdaBNResult: _adabn_notice,
    }[type(r)]
    return found(r)


def _lr_range_notice(r: LrRangeResult) -> str:
    """The conclusion, with the numbers of this run."""
    parts = []
    for m in r.models:
        span = r.usable(m)
        where = f"from {span[0]:.3g} to {span[1]:.3g} ({r.decades(m):.1f} decades)" if span else "at no rate"
        parts.append(
            f"**{m}** reaches {TRAINS_AT:.0%} test accuracy {where}; its best rate is {r.best_lr(m):.3g} "
            f"({np.nanmax(np.append(r.acc(m), 0)):.1%})"
        )
    first = [d for d in r.diverged("no BN") if d is not None]
    tail = (
        f" Without BN, {len(first)} of the {len(r.lrs)} rates diverged (the loss passed 10x chance or "
        "became infinite)" + (f", the fastest at step {min(first)}." if first else ".")
        if first
        else ""
    )
    return "; ".join(parts) + "." + tail


def _landscape_notice(r: LandscapeResult) -> str:
    spread, grad = r.mean_spread(), np.nanmean(r.grad_change.max(-1), 0)
    beta = np.nanmean(r.smoothness(), 0)
    return (
        f"Averaged over {len(r.check_steps)} checkpoints, the loss along the gradient varies by "
        f"{spread[0]:.3g} with BN and {spread[1]:.3g} without ({spread[1] / spread[0]:.1f}x); the gradient "
        f"changes by up to {grad[0]:.3g} with BN and {grad[1]:.3g} without, and the effective β-smoothness is "
        f"{beta[0]:.3g} with BN and {beta[1]:.3g} without."
    )


def _noisy_notice(r: NoisyResult) -> str:
    shift, acc = r.mean_shift().mean(1), r.test_acc
    text = (
        f"The distribution each layer sees moves by {shift[1]:.3g} per step with noisy BN, against "
        f"{shift[0]:.3g} with BN and {shift[2]:.3g} without BN (mean over layers and units of the change in "
        f"each unit's mean plus the change in its std). After {r.steps_done} steps noisy BN reaches "
        f"{_percent(acc[1])} test accuracy, BN {_percent(acc[0])} and no BN {_percent(acc[2])}."
    )
    if all(r.claims().values()):
        return text + (
            " Noisy BN's layers see more shift than no BN's, yet it learns about as well as BN: keeping each "
            "layer's input distribution still is not what makes BN help."
        )
    failed = [name for name, ok in r.claims().items() if not ok]
    return text + f" At these settings noisy BN's result is not clear-cut (not {', not '.join(failed)})."


def _scale_notice(r: ScaleResult) -> str:
    if not len(r.hidden_lr):
        return ""
    w0, w1 = r.weight_norm[0].mean(-1), r.weight_norm[-1].mean(-1)  # (K,) mean over layers
    eff = r.effective_lr()
    e0, e1 = eff[0].mean(-1), eff[-1].mean(-1)
    check = r.check
    return (
        f"Over {r.steps_done} steps the hidden weights' norm (mean over layers) went from {w0[0]:.3g} to "
        f"{w1[0]:.3g} without weight decay and to {w1[DECAYED]:.3g} with λ = {r.spec.weight_decay:g}; the "
        f"effective rate lr/‖w‖² went from {e0[0]:.3g} to {e1[0]:.3g} and to {e1[DECAYED]:.3g}, "
        f"{e1[DECAYED] / e1[0]:.1f}x higher with decay. The network without decay but with the decayed one's "
        f"effective rate predicts the same class on {_percent(r.agreement)} of the test images (test accuracy "
        f"{_percent(r.test_acc[MATCHED])} against {_percent(r.test_acc[DECAYED])})"
        + (
            ": weight decay changed the rate, not the function."
            if r.agreement >= SAME_FUNCTION
            else f". With BN's ε = {r.spec.bn_eps:g} the two drift apart: ε breaks the scale invariance where "
            "the decayed weights make a layer's variance small."
        )
        + (
            f" Live check: scaling a layer by c = {r.spec.scale_c:g} changed the outputs by at most "
            f"{check['output_change'].max():.1e} (relative) and c·∇L(cw) differs from ∇L(w) by at most "
            f"{check['grad_error'].max():.1e}; with BN's ε = 1e-5 by {check['output_change_with_eps'].max():.1e} "
            f"and {check['grad_error_with_eps'].max():.1e}."
            if check
            else ""
        )
    )


def _adabn_notice(r: AdaBNResult) -> str:
    if not r.done:
        return ""
    need, n = r.samples_needed(), r.spec.adapt_samples
    return (
        f"On the clean test images the BN network scores {_percent(r.clean_acc[0])}; with the shift "
        f"({r.spec.shift}) and its training running statistics, {_percent(r.shifted_acc[0])} (no BN: "
        f"{_percent(r.clean_acc[1])} and {_percent(r.shifted_acc[1])}). Re-estimating the BN statistics on "
        f"{n} unlabelled shifted images (AdaBN) gives {_percent(r.adabn_at(n))}, and on all {r.pool_size}, "
        f"{_percent(r.pool_acc)}; each test batch's own statistics ({r.spec.test_batch} images) give "
        f"{_percent(r.batch_stats_acc)}. "
        + (
            f"{need} images already come within {CLOSE:.0%} of the whole pool's accuracy."
            if r.adabn_helps()
            else "Re-estimating does not help this shift: BN's statistics can undo a change of each unit's mean "
            "and scale, and this shift is more than that."
        )
    )


def _percent(x: float) -> str:
    """An accuracy for a notice; a diverged network has none."""
    return f"{x:.1%}" if math.isfinite(x) else "none (diverged)"


# --- the page's charts --------------------------------------------------------------------------------------


def panels(part: Part, r, final: bool, font: int, layer: int | None = None) -> list[Panel]:
    """The experiment `part` of the page; layer: the noisy view's hidden layer, counted from 0."""
    # the learning-rate range plots where each rate diverges: there divergence is the data, not an error
    out = (
        []
        if part.experiment == "why_lr_range"
        else [
            diverged(f"{m} network", step, "its curves stop there")
            for m, step in zip(r.models, r.diverged_at)
            if step is not None
        ]
    )
    if part.experiment == "why_lr_range":
        out.append(Chart("why-lr-range", figs.lr_range(r, font)))
    elif part.experiment == "why_landscape":
        out.append(Chart("why-landscape", figs.landscape(r, font)))
    elif part.experiment == "why_noisy":
        layer = figs.default_layer(r.spec.depth) if layer is None else layer
        out += [
            Chart("why-noisy-layers", figs.noisy_distributions(r, layer, font)),
            Chart("why-noisy-summary", figs.noisy_summary(r, font)),
        ]
    elif part.experiment == "why_scale":
        out.append(Chart("why-scale", figs.scale(r, font)))
        out += [Table(r.check_table())] if final else []
    elif final:
        out.append(Chart("why-adabn", figs.adabn(r, font)))
    out.append(Text(caption(r.spec), "caption"))
    return out + ([Text(notice(r), "success")] if final else [])


# --- presets and the PyTorch snippets -----------------------------------------------------------------------

PRESETS = {
    "BN widens the usable learning rates": Preset(
        {"view": "lr-range"},
        "Twelve learning rates from 0.001 to 10, each with and without BN, trained together. Read off the rates "
        "where each curve stays above the dotted 90% line, and where each peaks: with BN both the range and the "
        "best rate reach higher. The numbers are below the chart.",
    ),
    "a smoother loss landscape": Preset(
        {"view": "landscape"},
        "At each checkpoint we step along the gradient with eight step sizes and look at the loss there: the band "
        "is the lowest to the highest loss. With BN the band is narrower and the gradient changes less along the "
        "step: a larger step is safer, which is why higher learning rates work.",
    ),
    "noisy BN still trains": Preset(
        {"view": "noisy"},
        "After every BN layer the noisy network's units get a random scale and offset, new every step: the "
        "distribution each layer sees shifts more than without BN at all. Yet it trains about as well as BN, "
        "and far better than no BN.",
    ),
    "weight decay raises the effective rate": Preset(
        {"view": "scale"},
        "With BN after a layer, only the direction of its weights matters. Weight decay shrinks ‖w‖, and a "
        "gradient step then turns the direction faster: lr/‖w‖² rises. A network without decay, given that "
        "rate, predicts exactly what the decayed one predicts.",
    ),
    "ε breaks exact scale invariance": Preset(
        {"view": "scale", "bn_eps": 1e-5},
        "With torch's ε = 1e-5 in every BN layer, BN(c·h) is no longer exactly BN(h): the matched network drifts "
        "away from the decayed one, and they no longer predict the same class on every test image.",
    ),
    "AdaBN undoes a contrast change": Preset(
        {"view": "adabn", "shift": "contrast"},
        "Lower contrast moves the mean and shrinks the spread of every first-layer unit. In eval mode the training "
        "statistics no longer fit and accuracy collapses; re-estimating them on a few dozen unlabelled shifted "
        "images (AdaBN) brings it back.",
    ),
    "inverted digits: statistics are not enough": Preset(
        {"view": "adabn", "shift": "invert"},
        "Inversion flips the sign of every first-layer unit, and a standard deviation cannot be negative: "
        "re-estimated statistics cannot undo it, and no way of computing BN's statistics helps.",
    ),
}


def pytorch_snippet(spec) -> str:
    """The snippet of the view `spec` belongs to (a WhyBNSpec: its current view)."""
    return snippets.experiment_snippet(
        {
            LrRangeSpec: _lr_range_snippet,
            LandscapeSpec: _landscape_snippet,
            NoisySpec: _noisy_snippet,
            ScaleSpec: _scale_snippet,
            AdaBNSpec: _adabn_snippet,
        },
        spec,
    )


def _lr_range_snippet(spec: LrRangeSpec) -> str:
    """Each rate trained with and without BN, one network at a time: test accuracy or None (diverged)."""
    code = _snippet_head(spec) + [
        "def train(norm, lr):  # test accuracy in eval mode, or None if the loss diverged",
        "    net = mlp(norm)",
        "    opt = torch.optim.SGD(net.parameters(), lr=lr)",
        "    for idx in batches:",
        "        loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])",
        f"        if not loss < {DIVERGED_LOSS:.4g}:  # ten times chance, or nan",
        "            return None",
        "        opt.zero_grad()",
        "        loss.backward()",
        "        opt.step()",
        "    return round((net.eval()(x_test).argmax(1) == y_test).float().mean().item(), 3)",
        "",
        "",
        f"for lr in torch.logspace({np.log10(spec.lr_min):.6g}, {np.log10(spec.lr_max):.6g}, {spec.rates}).tolist():",
        "    print(f'lr {lr:7.3g}: BN {train(nn.BatchNorm1d, lr)}, no BN {train(lambda w: nn.Identity(), lr)}')",
    ]
    return "\n".join(code) + "\n"


def _landscape_snippet(spec: LandscapeSpec) -> str:
    """BN and no BN trained at one rate; every k steps, the lowest and highest loss along the gradient."""
    etas = ", ".join(f"{e:.4g}" for e in spec.etas())
    code = _snippet_head(spec) + [
        "def band(net, xb, yb):  # lowest and highest loss at θ - ηg (BN: batch statistics of xb)",
        "    params = list(net.parameters())",
        "    g = torch.autograd.grad(nn.functional.cross_entropy(net(xb), yb), params)",
        "    seen = []",
        "    with torch.no_grad():",
        f"        for eta in [{etas}]:",
        "            torch._foreach_add_(params, g, alpha=-eta)",
        "            seen.append(nn.functional.cross_entropy(net(xb), yb).item())",
        "            torch._foreach_add_(params, g, alpha=eta)",
        "    return f'{min(seen):.2f}-{max(seen):.2f}'",
        "",
        "",
        "for name, norm in (('BN', nn.BatchNorm1d), ('no BN', lambda w: nn.Identity())):",
        "    net, spans = mlp(norm), []",
        f"    opt = torch.optim.SGD(net.parameters(), lr={spec.lr:g})",
        "    for step, idx in enumerate(batches):",
        f"        if step % {spec.check_every} == 0:  # (the probe also nudges BN's running statistics)",
        "            spans.append(band(net, x_train[idx], y_train[idx]))",
        "        loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])",
        "        opt.zero_grad()",
        "        loss.backward()",
        "        opt.step()",
        "    print(name, 'loss along the gradient at each checkpoint:', ' '.join(spans))",
    ]
    return "\n".join(code) + "\n"


def _noisy_snippet(spec: NoisySpec) -> str:
    """BN, noisy BN and no BN on the same batches; test accuracy with the test set as one batch."""
    code = _snippet_head(spec) + [
        "class NoisyBN(nn.BatchNorm1d):  # each unit: a random scale and shift after BN, new every training step",
        "    def forward(self, x):",
        "        y = super().forward(x)",
        "        if torch.is_grad_enabled():  # training steps only",
        f"            y = y * (1 + torch.rand(y.shape[1]) * {spec.noise_scale - 1:g}) "
        f"+ (torch.rand(y.shape[1]) * 2 - 1) * {spec.noise_mean:g}",
        "        return y",
        "",
        "",
        "for name, norm in (('BN', nn.BatchNorm1d), ('noisy BN', NoisyBN), ('no BN', lambda w: nn.Identity())):",
        "    net = mlp(norm)",
        f"    opt = torch.optim.SGD(net.parameters(), lr={spec.noisy_lr:g})",
        "    for idx in batches:",
        "        loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])",
        "        opt.zero_grad()",
        "        loss.backward()",
        "        opt.step()",
        "    with torch.no_grad():  # train mode without noise: the test set as one batch",
        "        for m in net.modules():",
        "            m.training = isinstance(m, nn.BatchNorm1d)",
        "        acc = (net(x_test).argmax(1) == y_test).float().mean().item()",
        "    print(f'{name}: test accuracy {acc:.1%}')",
    ]
    return "\n".join(code) + "\n"


def _scale_snippet(spec: ScaleSpec) -> str:
    """The scale-invariance check on one layer, then ‖w‖ and lr/‖w‖² with and without weight decay."""
    code = _snippet_head(spec) + [
        f"c, xb, yb = {spec.scale_c:g}, x_train[:256].double(), y_train[:256]",
        "net = mlp(lambda w: nn.BatchNorm1d(w, eps=1e-12)).double()  # ε ~ 0 (torch refuses 0): the identity holds",
        "",
        "",
        "def out_and_grad(scale):  # scale the first layer's weights and bias by `scale`",
        "    w = (net[0].weight * scale).detach().requires_grad_()",
        "    out = net[1:](nn.functional.linear(xb, w, net[0].bias * scale))",
        "    return out, torch.autograd.grad(nn.functional.cross_entropy(out, yb), w)[0]",
        "",
        "",
        "(out, g), (out_c, g_c) = out_and_grad(1.0), out_and_grad(c)",
        "print(f'outputs change by {(out_c - out).abs().max():.1e}', end=', ')",
        "print(f'|c*g(cw) - g(w)| = {(c * g_c - g).abs().max():.1e}')",
        "",
        f"for wd in (0.0, {spec.weight_decay:g}):  # decay on the hidden (BN-followed) weights only",
        f"    net = mlp(lambda w: nn.BatchNorm1d(w, eps={max(spec.bn_eps, 1e-12):g}))",
        "    hidden = [m.weight for m in net[:-1] if isinstance(m, nn.Linear)]",
        "    rest = [p for p in net.parameters() if all(p is not h for h in hidden)]",
        f"    opt = torch.optim.SGD([{{'params': hidden, 'weight_decay': wd}}, {{'params': rest}}], lr={spec.lr:g})",
        "    for idx in batches:",
        "        loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])",
        "        opt.zero_grad()",
        "        loss.backward()",
        "        opt.step()",
        "    norms = [w.norm().item() for w in hidden]",
        f"    rates = ' '.join(f'{{{spec.lr:g} / n**2:.2g}}' for n in norms)",
        "    print(f'weight decay {wd}: |w| per layer', ' '.join(f'{n:.2f}' for n in norms), '; lr/|w|^2', rates)",
    ]
    return "\n".join(code) + "\n"


def _adabn_snippet(spec: AdaBNSpec) -> str:
    """Train a BN net on clean digits; test it shifted with training statistics, AdaBN and test-batch statistics."""
    shifted = {
        "brightness": f"x + {spec.brightness:g}",
        "contrast": f"0.5 + {spec.contrast:g} * (x - 0.5)",
        "invert": "1 - x",
        "translate": f"nn.functional.pad(x.reshape(-1, 8, 8)[:, :, : 8 - {spec.pixels}], ({spec.pixels}, 0))"
        ".reshape(-1, 64)",
    }[spec.shift]
    code = _snippet_head(spec, scaling="unit") + [
        "def shift(x):",
        f"    return {shifted}",
        "",
        "",
        "def acc(net, x):",
        "    with torch.no_grad():",
        "        return f'{(net(x).argmax(1) == y_test).float().mean().item():.1%}'",
        "",
        "",
        "net = mlp(nn.BatchNorm1d)",
        f"opt = torch.optim.SGD(net.parameters(), lr={spec.lr:g})",
        "for idx in batches:",
        "    loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])",
        "    opt.zero_grad()",
        "    loss.backward()",
        "    opt.step()",
        "print('clean, eval mode:', acc(net.eval(), x_test), '| shifted:', acc(net, shift(x_test)))",
        "bns = [m for m in net if isinstance(m, nn.BatchNorm1d)]",
        "for m in bns:  # AdaBN: forget the statistics, then average them over unlabelled shifted images",
        "    m.reset_running_stats()",
        "    m.momentum = None",
        "with torch.no_grad():",
        f"    net.train()(shift(x_train[torch.randperm(len(x_train))[:{spec.adapt_samples}]]))",
        f"print('AdaBN on {spec.adapt_samples} images:', acc(net.eval(), shift(x_test)))",
        "print('the shifted test set with its own statistics:', acc(net.train(), shift(x_test)))",
    ]
    return "\n".join(code) + "\n"


def _snippet_head(spec, scaling: str = "standardize") -> list[str]:
    """The lines every Why-BN snippet starts with: the digits, the MLP with a chosen norm, the batches."""
    scaled = snippets.STANDARDIZED if scaling == "standardize" else "x / 16"  # unit: pixels in [0, 1]
    return [
        "import torch",
        "from torch import nn",
        "from sklearn.datasets import load_digits",
        "",
        snippets.digits_lines(1348, scaled),
        "",
        "",
        f"def mlp(norm, depth={spec.depth}, w={spec.width}):  # norm(w) builds each hidden layer's norm; Xavier init",
        f"    torch.manual_seed({spec.seed})",
        "    sizes = [64] + [w] * depth",
        "    layers = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), norm(b), nn.ReLU())]",
        "    net = nn.Sequential(*layers, nn.Linear(w, 10))",
        "    for m in net:",
        "        if isinstance(m, nn.Linear):",
        "            nn.init.normal_(m.weight, std=m.in_features**-0.5)",
        "            nn.init.zeros_(m.bias)",
        "    return net",
        "",
        "",
        f"g = torch.Generator().manual_seed({spec.seed})  # the same {spec.steps} batches for every network",
        f"batches = [torch.randint(len(x_train), ({spec.batch_size},), generator=g) for _ in range({spec.steps})]",
        "",
        "",
    ]
