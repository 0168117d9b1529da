"""What the Activations page says and draws: its introduction, the charts with their captions, what to notice,
the formulas, its presets and its PyTorch snippet."""

from __future__ import annotations

from normviz import snippets
from normviz.config import Preset
from normviz.experiments.activations import PROBE_BATCH, ActivationsResult, ActivationsSpec
from normviz.figures import activations as figs
from normviz.panels import Chart, Panel, diverged
from normviz.views import Part

INTRO = "Two MLPs start from identical weights and train on the same batches; only one has BatchNorm."


def histogram_caption() -> str:
    return (
        f"Bars: share of a fixed probe batch (the first {PROBE_BATCH} training samples) per bin; bin edges are "
        "fixed at step 0 and values outside them count in the end bins. Drag the step slider or press play."
    )


WHAT_TO_NOTICE = (
    "- **No BN, tiny init** (std 0.01): each layer shrinks its input, so deep activations collapse "
    "to a spike at 0 and the gradients vanish; the network stays at chance.\n"
    "- **With BN** the same weights give every layer unit-scale inputs, whatever the init scale.\n"
    "- **Sigmoid/tanh with std 1** saturate without BN (mass at the ends of the range)."
)
FORMULAS = [
    r"\mu_B=\frac1m\sum_{i=1}^m x_i,\qquad \sigma_B^2=\frac1m\sum_{i=1}^m (x_i-\mu_B)^2",
    r"\hat x_i=\frac{x_i-\mu_B}{\sqrt{\sigma_B^2+\epsilon}},\qquad y_i=\gamma\hat x_i+\beta",
]


def panels(part: Part, r: ActivationsResult, final: bool, font: int, quantity: str = "act") -> list[Panel]:
    """quantity: what the histograms show (figs.QUANTITY_TITLES); they animate once the run is done."""
    out = [diverged(f"{model} network", step) for model, step in zip(r.models, r.diverged_at) if step is not None]
    return out + [
        Chart("act-hist", figs.layer_histograms(r, quantity, font, animate=final), histogram_caption()),
        Chart("act-curves", figs.training_curves(r, font)),
        Chart("act-stats", figs.layer_stats(r, font)),
    ]


# --- presets and the PyTorch snippet ------------------------------------------------------------------------

PRESETS = {
    "tiny init, no BN: activations collapse": Preset(
        {"init": "std", "init_std": 0.01, "activation": "relu"},
        "With weights of std 0.01, every layer shrinks the scale of its input about 14-fold (0.01·√100·√½), "
        "so by layer 3 the no-BN activations are a spike at 0, the gradients vanish and the network stays at "
        "chance (about 10%). The BN network starts from the very same weights, yet every layer gets unit-scale "
        "inputs and it trains.",
    ),
    "sigmoid, std=1: saturation": Preset(
        {"activation": "sigmoid", "init": "std", "init_std": 1.0},
        "With weights of std 1 each sigmoid gets inputs of std 6-7, so without BN about 60% of the "
        "activations sit in the flat ends (below 0.03 or above 0.97, see 'share saturated'), where the "
        "gradient is almost 0. BN feeds every sigmoid unit-scale inputs, keeping it in its steep middle: "
        "almost nothing saturates and the BN network learns faster.",
    ),
    "He init + ReLU": Preset(
        {"activation": "relu", "init": "he"},
        "He init draws each layer's weights with std √(2/fan_in), which keeps the scale of ReLU activations "
        "the same from layer to layer: without BN the per-layer std stays flat at step 0, and both networks "
        "train. BN is one cure for badly scaled activations; at this depth a good init is another.",
    ),
}


def pytorch_snippet(spec: ActivationsSpec) -> str:
    """A short script: the BN and no-BN MLPs from the same weights, per-layer activation scale, accuracy."""
    data_import, data = snippets.data_lines(spec)
    act = snippets.activation_layer(spec.activation)
    block = "norm(), " + act if spec.norm_place == "before" else act + ", norm()"
    optim = (
        f"torch.optim.Adam(net.parameters(), lr={spec.lr:g})"
        if spec.optimizer == "adam"
        else f"torch.optim.SGD(net.parameters(), lr={spec.lr:g}, momentum={spec.sgd_momentum:g})"
    )
    stat, measure = {
        "sigmoid": ("share saturated", "((a < 0.03) | (a > 0.97)).float().mean()"),
        "tanh": ("share saturated", "(a.abs() > 0.97).float().mean()"),
    }.get(spec.activation, ("std", "a.std()"))
    code = [
        "import torch",
        "from torch import nn",
        data_import,
        "",
        *data,
        "",
        "def mlp(bn):",
        f"    torch.manual_seed({spec.seed})  # both networks start from the same weights, see the same batches",
        f"    norm = (lambda: nn.BatchNorm1d({spec.width})) if bn else nn.Identity",
        f"    blocks = [nn.Sequential(nn.Linear(n, {spec.width}), {block}) "
        f"for n in [x.shape[1]] + [{spec.width}] * {spec.depth - 1}]",
        f"    net = nn.Sequential(*blocks, nn.Linear({spec.width}, int(y.max()) + 1))",
        "    for m in net.modules():",
        "        if isinstance(m, nn.Linear):",
        f"            nn.init.normal_(m.weight, std={snippets.init_std_expr(spec.init, spec.init_std)})",
        "            nn.init.zeros_(m.bias)",
        "    return net",
        "",
        f"def per_layer(net):  # {stat} after each activation: {PROBE_BATCH} training samples, train mode",
        f"    h, out = x_train[:{PROBE_BATCH}], []",
        "    for block in net[:-1]:",
        f"        a, h = block[:{3 if spec.norm_place == 'before' else 2}](h), block(h)",
        f"        out.append(f'{{{measure}:.3g}}')",
        "    return ' '.join(out)",
        "",
        "for name, bn in (('BN', True), ('no BN', False)):",
        "    net = mlp(bn)",
        f"    opt, at_start = {optim}, per_layer(net)",
        f"    for idx in torch.randint(len(x_train), ({spec.steps}, {spec.batch_size})):  # the batches",
        "        loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])",
        "        opt.zero_grad()",
        "        loss.backward()",
        "        opt.step()",
        "    acc = (net.eval()(x_test).argmax(1) == y_test).float().mean().item()  # eval mode",
        f"    print(f'{{name}}: test accuracy {{acc:.1%}}; {stat} per layer at step 0: {{at_start}}, "
        f"after {spec.steps} steps: {{per_layer(net.train())}}')",
    ]
    return "\n".join(code) + "\n"
