"""What the Train vs inference page says around its charts: its introduction, each chart's title and caption
(by chart name), the batch-size-1 error, and the formulas (with norm_zoo.RENORM_VS_PAPER under them)."""

from __future__ import annotations

from normviz.experiments.batch_size import REF_BATCH, STREAM_EVAL_EVERY, BatchSizeSpec
from normviz.figures import train_vs_inference as figs
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


def _section(name: str, fig, notice: str, caption: str = "") -> Chart:
    return Chart(name, fig, caption or CAPTIONS[name], TITLES[name], notice)


def panels(part: Part, r, final: bool, font: int) -> list[Panel]:
    b = part.page.batch_size  # the page's B: neither experiment's own settings hold it
    if part.experiment == "batch_size":
        out = [_section("tvi-sweep", figs.sweep(r, b, font), figs.notice_sweep(r))]
        if r.done:
            out.append(_section("tvi-stream", figs.stream(r, font), figs.notice_stream(r), stream_caption(r.spec)))
        return out
    out = [diverged(net, step, "its charts stop there") for net, step in r.diverged_at.items()]
    if r.mlp is None:
        return out
    out += [
        _section("tvi-modes", figs.train_vs_eval(r, b, font), figs.notice_train_vs_eval(r, b)),
        Text(BATCH_OF_ONE, "subheader"),
        Text(BN1D_REFUSES),
        Text(f"ValueError: {r.bn1d_error}", "code"),
        _section("tvi-single", figs.single_image(r, font), figs.notice_single_image(r)),
    ]
    if r.story is None:
        return out
    out += [
        _section("tvi-story", figs.story(r, font), figs.notice_story(r)),
        _section("tvi-mates", figs.batch_mates(r, b, font), figs.notice_batch_mates(r, b)),
    ]
    if r.finetune is not None:
        out.append(_section("tvi-finetune", figs.finetune(r, font), figs.notice_finetune(r)))
    return out
