"""What the Train vs inference page says around its charts: its introduction, each chart's title and caption
(by chart name), what to notice in each (from the run's numbers), the batch-size-1 error, the formulas (with
lessons.alternatives.RENORM_VS_PAPER under them), its presets and its two PyTorch snippets."""

from __future__ import annotations

import numpy as np

from normviz import snippets
from normviz.config import Preset
from normviz.experiments.batch_size import BATCH_STAT_NORMS, REF_BATCH, STREAM_EVAL_EVERY, BatchSizeSpec
from normviz.experiments.inference import CAMERA_GAIN, CAMERA_OFFSET, TrainVsInferenceSpec
from normviz.figures import train_vs_inference as figs
from normviz.figures.train_vs_inference import nearest, pct
from normviz.layers import NORM_LABELS, group_count
from normviz.panels import Chart, Panel, Text, diverged
from normviz.views import Part

INTRO = (
    "A BN network that works in training can behave differently in production, where images come one "
    "at a time; and small batches hurt BN while it trains. The slider B is used in every section."
)
TITLES = {
    "tvi-modes": "Train mode vs eval mode on the same inputs",
    "tvi-single": "",  # under the batch-size-1 heading, after torch's error
    "tvi-story": "The story: “forgot model.eval()”",
    "tvi-mates": "Batch-mates",
    "tvi-finetune": "Fine-tuning with frozen BN",
    "tvi-sweep": "Small-batch training",
    "tvi-stream": "Online learning with a varying batch size",
}
BATCH_OF_ONE = "Batch size 1 in train mode"
BN1D_REFUSES = (
    "`torch.nn.BatchNorm1d` in train mode, given a batch of one sample, raises (one value per channel has no variance):"
)
CAPTIONS = {
    "tvi-modes": "Test accuracy of the trained BN nets with the test set fed in batches of B (a random partition, "
    "each image scored once); train mode restores the running statistics afterwards. Grey bar: the slider.",
    "tvi-single": "Probability the CNN gives the true class of the first test images: eval mode vs each image "
    "alone in train mode.",
    "tvi-story": "The test images as a stream of frames, one forward pass each; the forgetful copy keeps updating "
    "its running statistics (PyTorch momentum convention).",
    "tvi-mates": "Softmax output for one test image placed in a batch of B with B−1 other images: of its class, "
    "mixed, or of its runner-up class.",
    "tvi-finetune": "Two copies of the MLP fine-tuned on the same new-camera batches with BN's γ, β frozen; drift "
    "averaged over channels and layers.",
    "tvi-sweep": "Each batch size trains fresh MLPs from the same initial weights, one per norm, as one stacked "
    "computation; eval mode = running statistics, train mode = the test set in batches of the training size.",
}


def stream_caption(spec: BatchSizeSpec) -> str:
    return (
        f"Test accuracy (eval mode) every {STREAM_EVAL_EVERY} steps; below, each step's batch size, drawn from 1 "
        f"to {spec.stream_max_batch}; learning rate × B/{REF_BATCH}."
    )


FORMULAS = [
    r"\text{train: } \hat x=\frac{x-\mu_B}{\sqrt{\sigma_B^2+\epsilon}},\qquad "
    r"\text{eval: } \hat x=\frac{x-\hat\mu}{\sqrt{\hat\sigma^2+\epsilon}},\qquad y=\gamma\hat x+\beta",
    r"\hat\mu\leftarrow(1-m)\,\hat\mu+m\,\mu_B,\quad \hat\sigma^2\leftarrow(1-m)\,\hat\sigma^2+m\,"
    r"\tfrac{n}{n-1}\sigma_B^2\quad(\text{PyTorch's } m\text{; Keras' momentum}=1-m)",
    r"\text{Batch Renorm: } \hat x=\frac{x-\mu_B}{\sigma_B}\,r+d,\quad r=\mathrm{clip}_{[1/r_{max},"
    r"\,r_{max}]}\frac{\sigma_B}{\hat\sigma},\quad d=\mathrm{clip}_{[-d_{max},\,d_{max}]}"
    r"\frac{\mu_B-\hat\mu}{\hat\sigma}\ (r,d\text{ constants in backprop})",
    r"\text{LayerNorm / GroupNorm: } \mu,\sigma^2 \text{ over one sample's channels (or a group of "
    r"them)}\qquad \text{lr}(B)=\text{lr}\cdot B/" + str(REF_BATCH),
]


# --- what to notice under each chart, with the run's numbers ------------------------------------------------


def notice_train_vs_eval(result, batch: int) -> str:
    mlp, cnn, sizes = result.mlp, result.cnn, list(result.mlp.sizes)
    batch = nearest(sizes, batch)
    i = sizes.index(batch)
    at = (
        f" At batch {batch} (the slider), train mode scores {pct(mlp.train_acc[i])} (MLP) and "
        f"{pct(cnn.train_acc[i])} (CNN)."
    )
    spread = float(np.ptp(mlp.eval_acc))
    same = "exactly the same at every batch size" if spread == 0 else f"within {spread:.1%} across batch sizes"
    return (
        f"- **Eval mode** normalises with the running statistics, one sample at a time: "
        f"{pct(mlp.eval_acc[0])}, {same}.\n"
        f"- **Train mode** normalises each batch with its own statistics: {pct(mlp.train_acc[1])} at batch 2, "
        f"{pct(mlp.train_acc[-1])} at batch {sizes[-1]}. Large batches have statistics close to the running "
        f"ones, small batches do not.{at}\n"
        "- At batch 1 the MLP's BatchNorm1d refuses to run (red cross); the CNN's BatchNorm2d runs."
    )


def notice_single_image(result) -> str:
    cnn = result.cnn
    return (
        f"- Alone in train mode, each image is normalised by its own per-channel statistics, and the CNN's "
        f"test accuracy drops from {pct(cnn.eval_acc[0])} (eval mode) to {pct(cnn.train_acc[0])}.\n"
        "- Why so low: the last BatchNorm2d sits before ReLU and global average pooling. Normalised over one "
        "image's positions, every channel has mean β and standard deviation of about |γ| whatever the image, so only "
        "the shape of each channel's values over the positions reaches the classifier."
    )


def _compared(a: float, b: float) -> str:
    """How a rounded percentage a stands to b, in words that stay true after rounding."""
    return "the same as" if pct(a) == pct(b) else "above" if a > b else "below"


def notice_story(result) -> str:
    s = result.story
    return (
        f"- With `model.eval()` the CNN scores {pct(s.eval_correct.mean())} frame by frame, exactly as in "
        f"batches. Without it, each frame is normalised by itself: {pct(s.forgot_correct.mean())}.\n"
        "- The forgotten train mode also updated the running statistics with every frame, so they now describe "
        f"these test frames: a later `.eval()` scores {pct(s.eval_after_forgot)} (grey bar), "
        f"{_compared(s.eval_after_forgot, s.eval_correct.mean())} the {pct(s.eval_correct.mean())} of the "
        "correct eval mode. That is test-time adaptation on the evaluation set, not a better model: the "
        "statistics were estimated on the very frames that are then scored, so the score has seen the test "
        "data and says nothing about frames still to come.\n"
        "- The MLP would not even run: BatchNorm1d raises the error above at the first frame."
    )


def notice_batch_mates(result, batch: int) -> str:
    m = result.mates
    sizes = list(m.sizes)
    if batch == 1:
        return "- Move the batch-size slider above 1 to give the image batch-mates."
    batch = nearest(sizes, batch)
    i = sizes.index(batch)
    p = m.train[i, :, m.label]
    return (
        f"- Train mode, batch {batch}: the probability of the true class {m.label} is {pct(p[0])} with "
        f"same-class batch-mates, {pct(p[1])} with mixed ones and {pct(p[2])} with class-{m.other_class} "
        f"ones. The largest change of any class probability over all batch sizes: "
        f"{m.spread('train'):.2f}.\n"
        f"- Eval mode: {pct(m.alone[m.label])} in every batch; the largest change is {m.spread('eval'):.1e}, "
        "float rounding. A sample's answer should not depend on its neighbours: in production use eval mode."
    )


def notice_sweep(result) -> str:
    sizes = list(result.sizes)
    if 2 not in sizes or 32 not in sizes:
        return "- Include batch sizes 2 and 32 in *Sweep batch sizes* for the numbers here."
    lo, hi = sizes.index(2), sizes.index(32)
    changes = ", ".join(
        f"{NORM_LABELS.get(k, k)} {100 * (result.test_acc[i, lo] - result.test_acc[i, hi]):+.0f}".replace("-", "−")
        for i, k in enumerate(result.norms)
    )
    lines = [
        f"- Test accuracy from batch 32 to batch 2, in points: {changes}. LayerNorm and GroupNorm normalise "
        "each sample on its own, so the batch size hardly matters to them."
    ]
    if "batch" in result.norms:
        bn = result.norms.index("batch")
        lines.append(
            f"- Right panel, BN: train mode (the statistics of a batch of B, as in training) scores "
            f"{pct(result.train_mode_acc[bn, lo])} at batch 2 and {pct(result.train_mode_acc[bn, hi])} at 32; "
            f"eval mode {pct(result.test_acc[bn, lo])} and {pct(result.test_acc[bn, hi])}. Two samples reduce "
            "every feature to ±1 (the sign of their difference), so at batch 2 BN learns little even in its own "
            "mode, and eval mode meets running statistics that no such batch matched. Where a size trains for few "
            "steps, the running averages also lag behind the weights."
        )
    if "renorm" in result.norms:
        lines.append(
            "- Batch Renorm corrects each batch toward the running statistics (r and d, clipped by rmax and "
            "dmax) to shrink that mismatch: compare its numbers with BN's."
        )
    lines.append(
        "- With *Lr scaling* set to none, one learning rate is too large or too small for some batch size "
        "and the comparison turns into noise."
    )
    return "\n".join(lines)


def notice_stream(result) -> str:
    ones = int((result.stream_batch == 1).sum())
    label = lambda k: NORM_LABELS.get(k, k)
    line = f"- {ones} of {len(result.stream_batch)} steps had a batch of one (red triangles)."
    skipped = [f"{label(k)} skipped {s}" for k, s in zip(result.norms, result.stream_skipped) if k in BATCH_STAT_NORMS]
    if skipped:
        line += (
            " BN and Batch Renorm cannot normalise one sample by its own batch statistics (PyTorch raises the "
            f"error above), so they skip those steps and never see those samples ({'; '.join(skipped)})."
        )
    if {"layer", "group"} & set(result.norms):
        line += " LayerNorm and GroupNorm normalise each sample over its own features and train on it as usual."
    final = ", ".join(f"{label(k)} {pct(a)}" for k, a in zip(result.norms, result.stream_acc[-1]))
    last = f"- Final test accuracy (eval mode): {final}."
    if "batch" in result.norms:
        last += (
            " BN's statistics come from batches of changing size, each as noisy as it is small: lower "
            "*Stream max batch* (e.g. to 8) and compare BN with the others."
        )
    return line + "\n" + last


def notice_finetune(result) -> str:
    f = result.finetune
    return (
        f"- The new camera: pixels × {CAMERA_GAIN} + {CAMERA_OFFSET} (standardised units). Both runs set "
        f"`requires_grad=False` on every BN γ and β (largest change of any of them: {f.gamma_change.max():g}).\n"
        f"- Left in train mode, BN still updates its running statistics from every batch: they moved "
        f"{f.mean_drift[-1, 0]:.2f} stds (mean) toward the new camera, and accuracy on the old camera went "
        f"from {pct(f.acc[0, 0, 0])} to {pct(f.acc[-1, 0, 0])}.\n"
        f"- With `.eval()` on the BN modules they do not move at all ({f.mean_drift[-1, 1]:.1g}); old-camera "
        f"accuracy ends at {pct(f.acc[-1, 1, 0])}, new-camera at {pct(f.acc[-1, 1, 1])}. Call `.eval()` on "
        "the BN modules again after every `model.train()`."
    )


# --- the page's charts --------------------------------------------------------------------------------------


def _section(name: str, fig, notice: str, caption: str = "") -> Chart:
    return Chart(name, fig, caption or CAPTIONS[name], TITLES[name], notice)


def panels(part: Part, r, final: bool, font: int) -> list[Panel]:
    b = part.page.batch_size  # the page's B: neither experiment's own settings hold it
    if part.experiment == "batch_size":
        # its notice compares every batch size: it waits until the smallest has trained
        out = [_section("tvi-sweep", figs.sweep(r, b, font), notice_sweep(r) if r.done else "")]
        if r.done:
            out.append(_section("tvi-stream", figs.stream(r, font), notice_stream(r), stream_caption(r.spec)))
        return out
    out = [
        diverged(net, step, "its charts stop there") for net, step in zip(r.models, r.diverged_at) if step is not None
    ]
    if r.mlp is None:
        return out
    out += [
        _section("tvi-modes", figs.train_vs_eval(r, b, font), notice_train_vs_eval(r, b)),
        Text(BATCH_OF_ONE, "subheader"),
        Text(BN1D_REFUSES),
        Text(f"ValueError: {r.bn1d_error}", "code"),
        _section("tvi-single", figs.single_image(r, font), notice_single_image(r)),
    ]
    if r.story is None:
        return out
    out += [
        _section("tvi-story", figs.story(r, font), notice_story(r)),
        _section("tvi-mates", figs.batch_mates(r, b, font), notice_batch_mates(r, b)),
    ]
    if r.finetune is not None:
        out.append(_section("tvi-finetune", figs.finetune(r, font), notice_finetune(r)))
    return out


# --- presets and the PyTorch snippets -----------------------------------------------------------------------

PRESETS = {
    "batch size 1 in train mode": Preset(
        {"batch_size": 1},
        "BatchNorm1d refuses a single sample in train mode: one value per channel has no variance. The CNN's "
        "BatchNorm2d accepts one image, because each channel still has several positions (8x8 = 64 in the first "
        "BN layer, 4x4 = 16 in the second, after a stride-2 convolution), and normalises it with that image's "
        "own statistics. It runs, and its accuracy drops.",
    ),
    "forgot model.eval()": Preset(
        {"batch_size": 64},
        "In the lab, tested in batches of 64, train mode scores about as well as eval mode, so the bug hides. "
        "Deployed frame by frame without .eval(), the same CNN normalises every frame by itself and drops to "
        "about 20% (chance: 10%); the MLP's BatchNorm1d crashes at the first frame.",
    ),
    "batch-mates change the answer": Preset(
        {"batch_size": 4},
        "In train mode the image's class probabilities depend on which three images share its batch. In eval "
        "mode they are identical in every batch, and identical to the image alone.",
    ),
    "small batches: BN vs GroupNorm": Preset(
        {"batch_size": 2, "norms": ("batch", "group")},
        "Same samples seen, learning rate scaled with the batch size: GroupNorm's accuracy hardly depends on "
        "the batch size, BN's collapses at batch 2. BN's eval mode meets running statistics that its noisy "
        "2-sample training statistics never matched.",
    ),
}


def pytorch_snippets(spec: TrainVsInferenceSpec) -> list[str]:
    """The page's two snippets, one per experiment in the order they run: train vs eval mode, then small batches."""
    return [_inference_snippet(spec), _batch_size_snippet(spec)]


def _inference_snippet(spec: TrainVsInferenceSpec) -> str:
    """Train a BN MLP in plain PyTorch, then eval mode vs train mode at small batches, and batch size 1."""
    sizes = sorted({2, max(spec.batch_size, 2), 64})
    layers = " ".join(
        ["nn.Linear(64, W), nn.BatchNorm1d(W, momentum=M), nn.ReLU(),"]
        + ["nn.Linear(W, W), nn.BatchNorm1d(W, momentum=M), nn.ReLU(),"] * (spec.depth - 1)
    )
    return f"""import copy

import torch
from sklearn.datasets import load_digits
from torch import nn

torch.manual_seed({spec.seed})
torch.set_num_threads(1)  # tiny models: one thread is fastest
{snippets.digits_lines(1350)}
W, M, B = {spec.width}, {spec.momentum}, {spec.train_batch}
model = nn.Sequential({layers} nn.Linear(W, 10))
opt = torch.optim.SGD(model.parameters(), lr={spec.lr} * B / {REF_BATCH}, momentum={spec.sgd_momentum})
for epoch in range({spec.train_epochs}):
    perm = torch.randperm(len(x_train))
    for i in range(0, len(x_train) - B + 1, B):
        idx = perm[i:i + B]
        loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad(); loss.backward(); opt.step()

def acc(net, batch):  # the test set fed in batches of `batch` (a short last batch is left out)
    n = len(x_test) // batch * batch
    with torch.no_grad():
        pred = torch.cat([net(x_test[i:i + batch]).argmax(1) for i in range(0, n, batch)])
    return (pred == y_test[:n]).float().mean().item()

print("eval mode:", acc(model.eval(), 1))
for batch in {sizes}:  # a copy, so the running statistics stay untouched
    print(f"train mode, batch {{batch}}:", acc(copy.deepcopy(model).train(), batch))
try:
    copy.deepcopy(model).train()(x_test[:1])
except ValueError as err:
    print("train mode, batch 1:", err)
"""


def _batch_size_snippet(spec: BatchSizeSpec) -> str:
    """BN vs GroupNorm vs LayerNorm at the smallest and the largest swept batch size, in plain PyTorch."""
    torch_norms = {
        "batch": "nn.BatchNorm1d(w)",
        "group": f"nn.GroupNorm({group_count(spec.width, spec.groups)}, w)",
        "layer": "nn.LayerNorm(w)",
        "none": "nn.Identity()",
    }
    norms = [k for k in spec.norms if k in torch_norms] or ["batch"]
    sizes = sorted({min(spec.sizes), max(spec.sizes)})
    note = (
        "# Batch Renorm has no torch module (see normviz.layers.BatchRenorm); left out here\n"
        if "renorm" in spec.norms
        else ""
    )
    return f"""import torch
from sklearn.datasets import load_digits
from torch import nn

{note}torch.manual_seed({spec.seed})
torch.set_num_threads(1)  # tiny models: one thread is fastest
{snippets.digits_lines(1350)}
NORMS = {{{", ".join(f'"{k}": lambda w: {torch_norms[k]}' for k in norms)}}}

def mlp(norm, w={spec.width}, depth={spec.depth}):
    layers, n_in = [], 64
    for _ in range(depth):
        layers += [nn.Linear(n_in, w), NORMS[norm](w), nn.ReLU()]
        n_in = w
    return nn.Sequential(*layers, nn.Linear(w, 10))

for B in {sizes}:
    for norm in NORMS:
        model = mlp(norm)
        opt = torch.optim.SGD(model.parameters(), lr={spec.lr} * B / {REF_BATCH})  # linear scaling rule
        for epoch in range({spec.epochs}):
            perm = torch.randperm(len(x_train))
            for i in range(0, len(x_train) - B + 1, B):
                idx = perm[i:i + B]
                loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
                opt.zero_grad(); loss.backward(); opt.step()
        model.eval()  # running statistics for BN
        with torch.no_grad():
            acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(f"batch {{B:4d}}  {{norm:6s}} test accuracy {{acc:.3f}}")
"""
