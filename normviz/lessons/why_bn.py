"""What the Why BN helps page says and draws around each of its five experiments: what each measures and
how it differs from the paper it mirrors, its charts, its finding (the result's `notice()`) and formulas."""

from __future__ import annotations

from normviz.experiments import why_adabn
from normviz.experiments.why_bn import WhyBNSpec
from normviz.experiments.why_common import digits
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


def panels(part: Part, r, final: bool, font: int, layer: int | None = None) -> list[Panel]:
    """The experiment `part` of the page; layer: the noisy view's hidden layer, counted from 0."""
    models = getattr(r, "models", ())
    out = [
        diverged(f"{m} network", step, "its curves stop there")
        for m, step in zip(models, r.diverged_at)
        if step is not None
    ]
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
    return out + ([Text(r.notice(), "success")] if final else [])
