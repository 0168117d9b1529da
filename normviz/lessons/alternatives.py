"""What the Alternatives page says around each of its views: captions (by chart), what to notice, formulas,
the words a run's numbers fill in (what the cost measured, a busy machine, missing SyncBN points, the longer RNN
sequences), its presets and each view's PyTorch snippet."""

from __future__ import annotations

import numpy as np
import torch

from normviz import snippets
from normviz.config import DataSpec, Preset, Spec
from normviz.experiments import norm_zoo
from normviz.experiments.alternatives import AxesSpec
from normviz.experiments.norm_cost import CostResult, CostSpec
from normviz.experiments.norm_zoo import CNN_CHANNELS, MLP_WIDTH, ZooSpec
from normviz.experiments.rnn_norms import REPEATS, TRAIN_STEPS, RNNResult, RNNSpec
from normviz.experiments.sync_bn import SyncBNResult, SyncBNSpec
from normviz.figures import alternatives as figs
from normviz.layers import group_count
from normviz.panels import Chart, Panel, Table, Text, diverged, percent_columns
from normviz.views import Part

RENORM_VS_PAPER = (
    "Batch Renorm here differs from Ioffe (2017, arXiv 1702.03275), Algorithm 1, in two ways: the running σ is "
    "√(running var + ε), where running var is PyTorch's moving average of the unbiased batch variance (the paper "
    "keeps a moving average of σ itself); and r_max, d_max hold from the first step (the paper starts at "
    "r_max = 1, d_max = 0, which is plain BatchNorm, and relaxes them during training)."
)
CAPTIONS = {
    "axes": "Each cube is one activation tensor of N samples x C channels x H·W positions. The shaded block is "
    "the set of values that one mean and one variance are computed over; grey lines border the other "
    "sets. Drag a cube to turn it.",
    "tensor": "The same kind of tensor with real numbers: rows are samples, columns are channels (each with its "
    "H·W positions). Each coloured box is one set; hover a cell for its value and its set's mean and "
    "variance. Below: after normalising, every box has mean 0 and variance 1 (RMSNorm: mean square 1, "
    "the sign and relative size of its mean kept).",
    "every-norm": "Every norm starts from the same initial weights (per seed) and sees the same batches; Adam. "
    f"Test accuracy ({snippets.split_sizes(DataSpec(dataset='digits'))[0]} held-out digits) in eval mode: "
    "BatchNorm and Batch Renorm use their running statistics (PyTorch momentum "
    f"{norm_zoo.RENORM_KWARGS['momentum']:g}), the others need none. " + RENORM_VS_PAPER,
    "cost": "Grey: the same training step (forward, backward, Adam) with the norm layers removed (ablation). "
    "Coloured: the extra time the norm layers take; the label is their share of the step. Solid: our "
    "written-out layers; hatched: torch's built-in modules. Fastest of 12 interleaved rounds, CPU time "
    "of one thread.",
    "sync-bn": "Every point trains the same model on global batches of W·b samples. Per-worker BN normalises each "
    "worker's b samples alone (its running statistics are worker 0's, as DDP broadcasts them); SyncBN "
    "combines every worker's mean and variance first. Middle and right: the first BN layer's input, batches "
    "drawn at random from the training set; in the CNN the H·W positions of one image are correlated, "
    "so the error is larger than the dotted 1/√(values) line.",
    "rnn": "RowRNN reads one image row per time step (8 steps), h_t = tanh(norm(W_x x_t + W_h h_{t-1})), and "
    "classifies the last state. Same initial weights and batches for the three.",
    "rnn-stats": "BatchNorm's running mean and variance for each time step (PyTorch momentum 0.1), after training.",
    "rnn-long": "Longer test sequences: the image read 2 or 3 times. Right, in eval mode on the test set: at each "
    "step t of a 24-step sequence, the std of BN's input (W_x x_t + W_h h_{t-1}) against the running "
    "std it divides by there, its own step's up to t = 7 and step 7's after that.",
}

NOTICE = {
    "axes": "- **BatchNorm**'s block runs across the batch: a sample's output depends on the other samples, "
    "and a batch is needed to compute it, so eval mode switches to running averages.\n"
    "- **LayerNorm, InstanceNorm and GroupNorm** stay inside one sample: they compute the same thing for "
    "any batch size, in training and in eval mode.\n"
    "- **GroupNorm** sits between them: G = 1 is LayerNorm, G = C is InstanceNorm (see the presets).",
    "every-norm": "- In the CNN at the default settings, **BatchNorm** and **GroupNorm + weight standardisation** "
    "learn fastest; plain GroupNorm and LayerNorm are not much better than no norm here. Weight "
    "standardisation is what brings GroupNorm up to BatchNorm.\n"
    "- **InstanceNorm** erases each image's per-channel mean and contrast: good for style transfer, "
    "poor for telling digits apart.\n"
    "- **Small batches** (preset *Batch of 2*): BatchNorm's statistics become noise and its running "
    "averages stop matching them; LayerNorm and GroupNorm do not depend on the batch size.\n"
    "- Differences of a few points can be luck: train several seeds per norm (preset *Three seeds*) "
    "before believing them.",
    "sync-bn": "- Per-worker BN with b samples estimates the mean with an error of about 1/√b of a standard "
    "deviation (MLP); SyncBN averages W·b values, √W times less noisy.\n"
    "- With **b = 1** a per-worker BatchNorm1d refuses to train (one value per channel). A per-worker "
    "BatchNorm2d runs, but normalises every image by its own statistics in training (InstanceNorm in "
    "disguise) and by running averages in eval mode, which do not match: the CNN learns nothing useful.\n"
    "- SyncBN is plain BN on the whole global batch (the tests check it against BatchNorm on that batch). "
    "Its price is communication: PyTorch's SyncBatchNorm gathers every worker's per-channel (mean, 1/σ, count) "
    "in the forward pass and sums two per-channel sums (of dy and of dy·(x − μ)) over the workers in the "
    "backward pass: two collectives per BN layer and step.",
    "rnn": "- Per-step BN needs one mean and variance **per time step**: step 0 (no previous state) differs from "
    "the later steps.\n"
    "- At step 8 and later it has **no statistics**: RowRNN refuses the sequence, unless told to reuse "
    "step 7's, which only works while later steps look like step 7.\n"
    "- **LayerNorm** normalises each sample over its own hidden units at every step: one layer for all "
    "steps, any length, any batch size.",
}

FORMULAS = {
    "axes": [
        r"\mu_S=\frac{1}{|S|}\sum_{i\in S}x_i,\qquad \sigma_S^2=\frac{1}{|S|}\sum_{i\in S}(x_i-\mu_S)^2",
        r"\hat x_i=\frac{x_i-\mu_{S(i)}}{\sqrt{\sigma_{S(i)}^2+\epsilon}},\qquad y_i=\gamma_c\hat x_i+\beta_c",
        r"S_{\text{BN}}=\{(\cdot,c,\cdot)\},\quad S_{\text{LN}}=\{(n,\cdot,\cdot)\},\quad "
        r"S_{\text{IN}}=\{(n,c,\cdot)\},\quad S_{\text{GN}}=\{(n,c,\cdot): \lfloor c/(C/G)\rfloor=g\}",
    ],
    "every-norm": [
        r"\text{BN: } \mu_c=\operatorname{mean}_{n,h,w}x_{nchw}\qquad "
        r"\text{GN: } \mu_{ng}=\operatorname{mean}_{c\in g,h,w}x_{nchw}",
        r"\text{WS: } \hat W_{o}=\frac{W_{o}-\operatorname{mean}(W_{o})}{\operatorname{std}(W_{o})}"
        r"\qquad \text{BRN: } \hat x=\frac{x-\mu_B}{\sigma_B}\,r+d,\ "
        r"r=\operatorname{clip}\Big(\frac{\sigma_B}{\sigma}\Big),\ d=\operatorname{clip}\Big("
        r"\frac{\mu_B-\mu}{\sigma}\Big)",
    ],
    "cost": [
        r"\text{share in the norm layers}=1-\frac{t(\text{step without norm layers})}"
        r"{t(\text{step with them})}"
    ],
    "sync-bn": [
        r"\text{all-gather of each worker's } (\mu_w,\ \sigma_w^2,\ n_w),\qquad "
        r"n_w=b\ \text{(MLP)},\quad n_w=b\,H\,W\ \text{(CNN)}",
        r"\mu=\frac{\sum_w n_w\,\mu_w}{\sum_w n_w},\qquad "
        r"\sigma^2=\frac{\sum_w n_w\big(\sigma_w^2+(\mu_w-\mu)^2\big)}{\sum_w n_w}"
        r"\quad\text{(within plus between workers)}",
    ],
    "rnn": [
        r"\text{BN: } h_t=\tanh\big(\mathrm{BN}_t(W_x x_t+W_h h_{t-1})\big)\ \text{(statistics per step } t)"
        r"\qquad \text{LN: } h_t=\tanh\big(\mathrm{LN}(W_x x_t+W_h h_{t-1})\big)"
    ],
}


# --- words from a run's numbers -----------------------------------------------------------------------------

# published figures for large CNNs, quoted by explain()
GITMAN_2017 = "Gitman & Ginsburg (2017, arXiv 1709.08145)"
JUNG_2018 = "Jung et al. (2018, arXiv 1807.01702)"
JUNG_2018_DENSENET_SPEEDUP = 0.257  # DenseNet-121 training performance gained by restructuring BN (their abstract)


def explain(result: CostResult) -> str:
    """What was measured, in words with the live numbers, and why published figures for large CNNs differ."""
    k_bn, k_torch = result.configs.index(("batch", "ours")), result.configs.index(("batch", "torch"))
    share, sizes = result.share(), result.batch_sizes
    j = len(sizes) // 2
    parts = ", ".join(f"{share[k_bn, i]:.0%} at batch {b}" for i, b in enumerate(sizes))
    model = "CNN" if result.spec.model == "cnn" else "MLP"
    k_none = result.configs.index(("none", "ours"))
    size = "An 8x8 image with 16-32 channels" if result.spec.model == "cnn" else "A 64-unit layer"
    ops, threads = result.ops, torch.get_num_threads()
    counted = (
        f" Counted here, one forward and backward pass runs {ops[k_none]} tensor operations without norm "
        f"layers, {ops[k_bn]} with our BatchNorm and {ops[k_torch]} with torch's."
        if ops[k_bn]
        else ""
    )
    return (
        f"**Measured here** (CPU, {threads} thread{'s' if threads > 1 else ''}): one training step of the {model} "
        f"at batch {sizes[j]} takes {result.baseline()[j]:.2f} ms without norm layers and "
        f"{result.ms[k_bn, j]:.2f} ms with our BatchNorm, so BN is **{share[k_bn, j]:.0%}** of the step "
        f"({parts}); with torch's built-in "
        f'BatchNorm it is {share[k_torch, j]:.0%}. For large CNNs, {GITMAN_2017} call BN "a significant '
        f"fraction of training run-time\", and {JUNG_2018} improved DenseNet-121's training performance by "
        f"{JUNG_2018_DENSENET_SPEEDUP:.1%} on a chip multiprocessor by restructuring its BN layers alone "
        "(fused with their neighbours, to read and write the activations fewer times). Why such numbers "
        "differ:\n"
        f"- **Tiny tensors, fixed cost per operation.** {size} is so small that, at small batches, every "
        "operation costs mostly its fixed overhead (Python, dispatch, autograd bookkeeping: microseconds), so "
        "time counts operations rather than arithmetic. A convolution is one operation; our BatchNorm is "
        f"a dozen or more in each direction, half of them for its running statistics.{counted}\n"
        "- **Written out vs fused.** Our layers are spelled out in elementary operations so that you can read "
        "them and track several momenta, and each of those operations reads and writes the whole activation "
        "tensor; torch's (and cuDNN's) BatchNorm is one fused kernel. Compare the 'ours' and 'torch' bars: "
        "at large batches, where the passes over memory dominate, the gap grows.\n"
        "- **Arithmetic vs memory.** In a large CNN the convolutions do almost all the arithmetic and run near "
        "the processor's peak speed, while BN does almost no arithmetic but reads and writes every activation "
        "several times: it is limited by memory bandwidth, so its share of the time is far larger than its "
        "share of the arithmetic. That memory traffic is what restructuring BN cuts.\n"
        "- **Batch size.** The share changes with the batch size (see the panels), so a single number is only "
        "true for one model, one batch size and one machine."
    )


def busy_note(result: CostResult) -> str:
    """A warning when the machine was busy: the median round much slower than the fastest one."""
    ratio = float(np.nanmedian(result.ms_median / result.ms)) if np.isfinite(result.ms).any() else 1.0
    if ratio < 1.5:
        return ""
    return (
        f"This computer was busy while timing (a typical round took {ratio:.1f}x the fastest one), so "
        "these numbers are rough; a share below 0 means the difference is within that noise. Run again "
        "(change the seed) when it is idle."
    )


def messages(result: SyncBNResult) -> list[str]:
    """Why some points are missing, in words."""
    names = {"local": "Per-worker BN", "sync": "SyncBN"}
    out = []
    for key, note in result.notes.items():
        mode, b = key.split(" b=")
        what = "torch refuses to train" if "Expected more than 1" in note else "training stopped"
        out.append(f"{names[mode]}, b = {b}: {what}: “{note}”")
    return out


def long_note(result: RNNResult) -> str:
    """What happened on the longer sequences, in words with this run's numbers."""
    accs = lambda n: " / ".join(f"{a:.0%}" for a in result.long_acc[n])  # noqa: E731
    gap = np.abs(result.seen_std / result.used_std - 1)  # (24,)
    inside, beyond = gap[:TRAIN_STEPS].mean(), gap[TRAIN_STEPS:].mean()
    lengths = " / ".join(str(TRAIN_STEPS * r) for r in REPEATS)
    return (
        f"Test accuracy at {lengths} steps: per-step BN reusing step 7's statistics {accs('batch')}, "
        f"LayerNorm {accs('layer')}, no norm {accs('none')}. The std BN divides by is off from the real one "
        f"by {inside:.0%} on average over steps 0–7 and by {beyond:.0%} beyond them. Reading the image "
        "again makes the later steps look much like the first eight, so here reusing step 7's statistics "
        f"costs {'little' if beyond < 0.25 else 'a lot'}; with inputs that change over time nothing "
        "guarantees that, which is why RowRNN refuses by default."
    )


# --- the page's charts --------------------------------------------------------------------------------------


def panels(part: Part, r, final: bool, font: int, tensor_norm: str = "group") -> list[Panel]:
    """The view the run belongs to is its experiment (`part`); tensor_norm: the norm of the small tensor (axes)."""
    if part.experiment == "alternatives":  # the axes view: a real tensor and the sets each norm averages over
        return [
            Chart("alt-cube", figs.axes_cube(r, font), CAPTIONS["axes"]),
            Chart("alt-tensor", figs.tensor_sets(r, tensor_norm, font), CAPTIONS["tensor"]),
            Table(r.table(tensor_norm)),
        ]
    if part.experiment == "norm_zoo":
        rows = r.table()
        out = [
            diverged(f"{row['norm']} network", row["diverged at step"], "its curves stop there")
            for row in rows
            if row.get("diverged at step")
        ]
        return out + [
            Chart("alt-zoo", figs.zoo_curves(r, font), CAPTIONS["every-norm"]),
            Table(rows, "alt-every-norm-results", percent_columns(rows)),
            Text(
                f"Final accuracies at batch size {r.spec.batch_size} after {r.steps_done} steps; GroupNorm "
                f"uses G = {r.groups_used} in the first layer.",
                "caption",
            ),
        ]
    if part.experiment == "norm_cost":
        busy = [Text(busy_note(r), "warning")] if final and busy_note(r) else []
        return [Chart("alt-cost", figs.cost_bars(r, font), CAPTIONS["cost"]), *busy] + (
            [Text(explain(r))] if final else []
        )
    if part.experiment == "sync_bn":
        return [Chart("alt-sync", figs.sync_figure(r, font), CAPTIONS["sync-bn"])] + [
            Text(m, "warning") for m in messages(r)
        ]
    out = [Chart("alt-rnn", figs.rnn_curves(r, font), CAPTIONS["rnn"])]
    if final:
        out += [
            Chart("alt-rnn-stats", figs.rnn_bn_stats(r, font), CAPTIONS["rnn-stats"]),
            Text("**A 16-step sequence with per-step BN**, as RowRNN answers it:"),
            Text(r.refusal, "code"),
            Chart("alt-rnn-long", figs.rnn_long(r, font), CAPTIONS["rnn-long"]),
            Text(long_note(r)),
        ]
    return out


# --- presets and the PyTorch snippets -----------------------------------------------------------------------

PRESETS = {
    "GroupNorm with G=1 is LayerNorm": Preset(
        {"view": "axes", "groups": 1},
        "One group holds every channel of a sample: GroupNorm's shaded block is LayerNorm's, and the statistics "
        "below are the same numbers.",
    ),
    "GroupNorm with G=C is InstanceNorm": Preset(
        {"view": "axes", "groups": 8},
        "One channel per group: each sample-and-channel gets its own mean and variance, exactly InstanceNorm.",
    ),
    "Batch of 2: BatchNorm breaks, LayerNorm and GroupNorm do not": Preset(
        {"view": "every-norm", "model": "mlp", "batch_size": 2, "steps": 600, "lr": 0.001},
        "With 2 samples per batch, the MLP's BatchNorm normalises each unit over 2 values, so in training every "
        "x̂ is exactly +1 or −1 whatever the input; the running averages it uses at test time describe something "
        "else. BatchNorm and Batch Renorm fall far behind; LayerNorm and GroupNorm use each sample's own "
        "statistics and do not care. (In the CNN, BN averages each channel over 2 x 64 positions in its first "
        "layer and 2 x 16 in its second, after a stride-2 convolution: switch the model and compare.)",
    ),
    "Three seeds: is the difference real?": Preset(
        {"view": "every-norm", "seeds": 3},
        "Each norm now trains from three initial weights, as one vmapped computation; the bands and the table "
        "show the lowest and the highest seed. A gap between two norms means something only if it is wider "
        "than their bands.",
    ),
    "The MLP: no InstanceNorm there": Preset(
        {"view": "every-norm", "model": "mlp"},
        "An MLP's activations are (B, C) with no spatial positions: InstanceNorm would normalise a single value "
        "to 0, so it is left out, and there are no convolutions to weight-standardise.",
    ),
    "One sample per worker": Preset(
        {"view": "sync-bn", "model": "mlp", "sub_batches": (1, 2, 4, 8), "workers": 8},
        'With b=1 a per-worker BatchNorm1d has one value per channel: torch refuses to train ("Expected more '
        'than 1 value per channel"). SyncBN normalises over all W*b = 8 samples and trains.',
    ),
    "RNN: per-step BatchNorm vs LayerNorm": Preset(
        {"view": "rnn", "steps": 300},
        "BN keeps one mean and variance per time step (the heatmaps): step 0, which has no previous hidden state, "
        "looks nothing like step 7. Beyond 8 steps it has no statistics, and RowRNN refuses the sequence unless "
        "told to reuse step 7's. Here the longer sequences read the same image again, so the later steps look "
        "much like the first eight and reusing step 7's costs little (the numbers under the right chart); with "
        "inputs that change over time nothing guarantees that. LayerNorm normalises each sample with its own "
        "statistics at any length.",
    ),
}


def pytorch_snippet(spec: Spec) -> str:
    """The snippet of the view `spec` belongs to (an AlternativesSpec: its current view)."""
    return snippets.experiment_snippet(
        {
            AxesSpec: _axes_snippet,
            ZooSpec: _every_norm_snippet,
            CostSpec: _cost_snippet,
            SyncBNSpec: _sync_bn_snippet,
            RNNSpec: _rnn_snippet,
        },
        spec,
    )


def _axes_snippet(spec: AxesSpec) -> str:
    g = group_count(spec.channels, spec.groups)
    return f"""import torch
from torch import nn

torch.manual_seed({spec.seed})
N, C, H, W, G = {spec.samples}, {spec.channels}, {spec.side}, {spec.side}, {g}
x = torch.randn(N, C, H, W) * 2 + 1
means = {{  # the axes each norm averages over
    'BatchNorm': x.mean(dim=(0, 2, 3)),  # (C,): one per channel
    'LayerNorm': x.mean(dim=(1, 2, 3)),  # (N,): one per sample
    'InstanceNorm': x.mean(dim=(2, 3)),  # (N, C)
    'GroupNorm': x.reshape(N, G, -1).mean(-1),  # (N, G)
}}
for name, m in means.items():
    print(f"{{name:12s}} {{tuple(m.shape)}} means, each over {{x.numel() // m.numel()}} values")
g = x.reshape(N, G, -1)
ours = ((g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + 1e-5)).reshape(x.shape)
print("GroupNorm by hand == F.group_norm:", torch.allclose(ours, nn.functional.group_norm(x, G), atol=1e-5))
print("G=1 is LayerNorm:", torch.allclose(nn.functional.group_norm(x, 1),
      nn.functional.layer_norm(x, x.shape[1:]), atol=1e-5))
print("G=C is InstanceNorm:", torch.allclose(nn.functional.group_norm(x, C),
      nn.functional.instance_norm(x), atol=1e-5))
"""


def _every_norm_snippet(spec: ZooSpec) -> str:
    norm_layer = {
        "cnn": (
            "lambda c, kind: {'batch': nn.BatchNorm2d(c), 'layer': nn.GroupNorm(1, c), "
            "'instance': nn.InstanceNorm2d(c, affine=True),\n"
            f"    'group': nn.GroupNorm({group_count(CNN_CHANNELS[0], spec.groups)}, c)}}[kind]"
        ),
        "mlp": (
            "lambda c, kind: {'batch': nn.BatchNorm1d(c), 'layer': nn.LayerNorm(c), "
            f"'group': nn.GroupNorm({group_count(MLP_WIDTH, spec.groups)}, c)}}[kind]"
        ),
    }[spec.model]
    if spec.model == "cnn":
        net = (
            "nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), norm(16, kind), nn.ReLU(),\n"
            "        nn.Conv2d(16, 32, 3, 2, 1), norm(32, kind), nn.ReLU(), nn.AdaptiveAvgPool2d(1), "
            "nn.Flatten(), nn.Linear(32, 10))"
        )
        kinds = "['batch', 'layer', 'instance', 'group']"
    else:
        net = (
            "nn.Sequential(nn.Linear(64, 64), norm(64, kind), nn.ReLU(), nn.Linear(64, 64), norm(64, kind), "
            "nn.ReLU(),\n        nn.Linear(64, 10))"
        )
        kinds = "['batch', 'layer', 'group']"
    return f"""import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from sklearn.datasets import load_digits

torch.set_num_threads(1)  # tiny networks: one thread is fastest
torch.manual_seed({spec.seed})
{snippets.digits_lines(1350)}
norm = {norm_layer}
for kind in {kinds}:
    torch.manual_seed({spec.seed})
    model = {net}
    opt = torch.optim.Adam(model.parameters(), lr={spec.lr:g})
    for step in range({spec.steps}):
        idx = torch.randint(0, len(x_train), ({spec.batch_size},))
        loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"{{kind:9s}} batch {spec.batch_size}: test accuracy {{acc:.3f}}")
"""


def _cost_snippet(spec: CostSpec) -> str:
    b = spec.cost_batch_sizes[0]
    if spec.model == "cnn":
        net = (
            "nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), norm(16), nn.ReLU(),\n"
            "        nn.Conv2d(16, 32, 3, 2, 1), norm(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), "
            "nn.Linear(32, 10))"
        )
        norms = "{'none': nn.Identity, 'batch': nn.BatchNorm2d, 'group': lambda c: nn.GroupNorm(4, c)}"
    else:
        net = (
            "nn.Sequential(nn.Linear(64, 64), norm(64), nn.ReLU(), nn.Linear(64, 64), norm(64), nn.ReLU(),\n"
            "        nn.Linear(64, 10))"
        )
        norms = "{'none': nn.Identity, 'batch': nn.BatchNorm1d, 'layer': nn.LayerNorm}"
    return f"""import time
import torch
from torch import nn

torch.set_num_threads(1)
x, y = torch.randn({b}, 64), torch.randint(0, 10, ({b},))
times = {{}}
for name, norm in {norms}.items():
    model = {net}
    opt = torch.optim.Adam(model.parameters())
    best = float('inf')
    for rnd in range(8):
        start = time.perf_counter()
        for _ in range(5):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        best = min(best, (time.perf_counter() - start) / 5)
    times[name] = best * 1e3
for name, ms in times.items():
    print(f"{{name:6s}} {{ms:.2f}} ms/step, share in the norm layers {{1 - times['none'] / ms:.0%}}")
"""


def _sync_bn_snippet(spec: SyncBNSpec) -> str:
    b = max(2, min(spec.sub_batches))
    return f"""import torch
from torch import nn

torch.manual_seed({spec.seed})
W, b, C = {spec.workers}, {b}, 5
x = torch.randn(W * b, C) * 3 + 1  # one global batch, W workers with b samples each
# per-worker BN: each worker normalises its own sub-batch
local = torch.cat([nn.functional.batch_norm(xi, None, None, training=True) for xi in x.split(b)])
# SyncBN: gather each worker's mean and biased var (and count), then combine them into one mean/var
worker_var, worker_mean = torch.var_mean(x.reshape(W, b, C), 1, unbiased=False)  # (W, C) each
mean = worker_mean.mean(0)  # equal counts
var = (worker_var + (worker_mean - mean) ** 2).mean(0)  # within plus between workers
synced = (x - mean) / torch.sqrt(var + 1e-5)
full = nn.BatchNorm1d(C, affine=False)(x)  # plain BN over the whole W*b batch
print("SyncBN == BN on the full batch:", torch.allclose(synced, full, atol=1e-5))
print("per-worker BN == BN on the full batch:", torch.allclose(local, full, atol=1e-5))
print("batch-mean noise, b vs W*b samples:", 1 / b ** 0.5, 1 / (W * b) ** 0.5)
"""


def _rnn_snippet(spec: RNNSpec) -> str:
    return f"""import torch
from torch import nn
from sklearn.datasets import load_digits

torch.set_num_threads(1)  # tiny networks: one thread is fastest
torch.manual_seed({spec.seed})
{snippets.digits_lines(1400, rows=True)}
w_x, w_h, head = nn.Linear(8, 64), nn.Linear(64, 64, bias=False), nn.Linear(64, 10)
bns = nn.ModuleList(nn.BatchNorm1d(64) for _ in range(8))  # BN needs statistics for every time step
params = [*w_x.parameters(), *w_h.parameters(), *head.parameters(), *bns.parameters()]
opt = torch.optim.Adam(params, lr={spec.lr:g})

def forward(seq):
    h = torch.zeros(len(seq), 64)
    for t in range(seq.shape[1]):
        h = torch.tanh(bns[min(t, 7)](w_x(seq[:, t]) + w_h(h)))  # beyond step 7: reuse step 7's BN
    return head(h)

for step in range({spec.steps}):
    idx = torch.randint(0, 1400, ({spec.batch_size},))
    loss = nn.functional.cross_entropy(forward(x[idx]), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
bns.eval()
with torch.no_grad():
    for reps in (1, 2):
        acc = (forward(x[1400:].repeat(1, reps, 1)).argmax(1) == y[1400:]).float().mean().item()
        print(f"{{8 * reps}} steps: test accuracy {{acc:.3f}}")
print("running var of step 0 vs step 7:", bns[0].running_var[:3], bns[7].running_var[:3])
"""
