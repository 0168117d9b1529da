"""The "Why BN helps" page: one spec for its five experiments (`view` picks one, `sub()` gives that experiment's own
spec), its presets, and what the page says around each view. The experiments live in why_lr_range, why_landscape,
why_noisy, why_scale and why_adabn; each is also a CLI command.
"""

from __future__ import annotations

from dataclasses import dataclass

from normviz.config import Preset, ViewsSpec, param
from normviz.experiments import why_adabn, why_landscape, why_lr_range, why_noisy, why_scale
from normviz.experiments.why_common import digits

VIEWS = ("lr-range", "landscape", "noisy", "scale", "adabn")
VIEW_TITLES = {
    "lr-range": "The usable learning-rate range",
    "landscape": "A smoother loss landscape",
    "noisy": "Noisy BN: covariate shift is not the reason",
    "scale": "Scale invariance and the effective learning rate",
    "adabn": "Domain shift and re-estimated statistics (AdaBN)",
}
VIEW_SPECS = {
    "lr-range": why_lr_range.LrRangeSpec,
    "landscape": why_landscape.LandscapeSpec,
    "noisy": why_noisy.NoisySpec,
    "scale": why_scale.ScaleSpec,
    "adabn": why_adabn.AdaBNSpec,
}
VIEW_RUNS = {
    "lr-range": why_lr_range.run,
    "landscape": why_landscape.run,
    "noisy": why_noisy.run,
    "scale": why_scale.run,
    "adabn": why_adabn.run,
}
SHARED = ["depth", "width", "steps", "batch_size"]
PAGE_FIELDS = {  # the sidebar, in order; each view reads only its own
    "lr-range": SHARED + ["rates", "lr_min", "lr_max"],
    "landscape": SHARED + ["lr", "check_every", "step_sizes", "step_max"],
    "noisy": SHARED + ["noisy_lr", "noise_mean", "noise_scale", "probe_every"],
    "scale": SHARED + ["lr", "weight_decay", "bn_eps", "scale_c"],
    "adabn": SHARED + ["lr", "shift", "brightness", "contrast", "pixels", "adapt_samples", "test_batch"],
}


@dataclass(frozen=True)
class WhyBNSpec(
    ViewsSpec,
    why_lr_range.LrRangeSpec,
    why_landscape.LandscapeSpec,
    why_noisy.NoisySpec,
    why_scale.ScaleSpec,
    why_adabn.AdaBNSpec,
):
    """Every setting of the Why BN helps page; `view` picks the experiment, `sub()` gives its own spec."""

    view: str = param(
        "lr-range",
        "what to show: " + "; ".join(f"{v}: {t}" for v, t in VIEW_TITLES.items()),
        choices=VIEWS,
        choice_labels=VIEW_TITLES,
        label="Experiment",
    )

    VIEW_SPECS = VIEW_SPECS
    VIEW_FIELDS = PAGE_FIELDS


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

# --- what the page says around each view (kept here so that the page stays a table of contents) -----------


def caption(spec: WhyBNSpec) -> str:
    """What the current view measures, what it mirrors and how it differs from the paper's set-up."""
    s = spec
    data = digits(s.seed)
    n_test = len(data.x_test)
    net = (
        f"a {s.depth}x{s.width} ReLU MLP (Xavier init) on the 8x8 digits ({len(data.x_train):,} to train, "
        f"{n_test} to test)"
    )
    if s.view == "lr-range":
        return (
            f"Each point is one network after {s.steps} steps of plain SGD, batch {s.batch_size}: {net}, with and "
            f"without BN, at {s.rates} rates from {s.lr_min:g} to {s.lr_max:g}; all {2 * s.rates} networks start "
            "from one draw of weights and see the same batches, in one stacked computation. Left: test accuracy "
            "in eval mode (none: diverged). Right: the step at which the loss passed 10x chance or became "
            "infinite. The claim that BN allows higher learning rates comes from Ioffe & Szegedy (2015); "
            "Santurkar et al. (2018) showed it on VGG on CIFAR-10, much larger than this."
        )
    if s.view == "landscape":
        etas = s.etas()
        return (
            f"Every {s.check_every} steps, on that step's training batch in train mode (batch statistics, running "
            f"statistics untouched), we take the gradient g and evaluate the loss and the gradient at θ − ηg for "
            f"{s.step_sizes} step sizes η from {etas[0]:.3g} to {etas[-1]:.3g}. Left: lowest to highest loss. "
            "Middle: ‖∇L(θ − ηg) − ∇L(θ)‖ (gradient predictiveness), lowest to highest. Right: the effective "
            "β-smoothness, the largest ‖∇L(θ − ηg) − ∇L(θ)‖/‖ηg‖. This mirrors Santurkar et al. (2018), who "
            f"measured it on VGG on CIFAR-10; here {net}, SGD at lr {s.lr:g}, {s.steps} steps."
        )
    if s.view == "noisy":
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
    if s.view == "scale":
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


MODULES = {
    why_lr_range.LrRangeSpec: why_lr_range,
    why_landscape.LandscapeSpec: why_landscape,
    why_noisy.NoisySpec: why_noisy,
    why_scale.ScaleSpec: why_scale,
    why_adabn.AdaBNSpec: why_adabn,
}


def pytorch_snippet(spec) -> str:
    """The snippet of the view `spec` belongs to (a WhyBNSpec: its current view)."""
    if isinstance(spec, WhyBNSpec):
        spec = spec.sub()
    return MODULES[type(spec)].pytorch_snippet(spec)
