import streamlit as st

from normviz import ui
from normviz.experiments import batch_size, inference
from normviz.experiments.inference import InferenceSpec
from normviz.experiments.norm_zoo import RENORM_VS_PAPER
from normviz.figures import train_vs_inference as figs

ui.enter_through_app()
st.title("Train mode vs inference")
st.caption(
    "A BN network that works in training can behave differently in production, where images come one "
    "at a time; and small batches hurt BN while it trains. The slider B is used in every section."
)
spec = ui.view_controls("train_vs_inference")
font, B = ui.font_size(), spec.batch_size


def section(title: str, fig, name: str, caption: str, notice: str):
    if title:
        st.subheader(title)
    ui.chart(fig, name)
    st.caption(caption)
    st.markdown("**What to notice**\n" + notice)


def render_inference(r, final: bool):
    for net, step in r.diverged_at.items():
        st.error(f"The {net} diverged at training step {step} (loss NaN or infinite); lower the learning rate.")
    if r.mlp is None:
        return
    section(
        "Train mode vs eval mode on the same inputs",
        figs.train_vs_eval(r, B, font),
        "tvi-modes",
        "Test accuracy of the trained BN nets with the test set fed in batches of B (a random partition, each "
        "image scored once); train mode restores the running statistics afterwards. Grey bar: the slider.",
        figs.notice_train_vs_eval(r, B),
    )
    st.subheader("Batch size 1 in train mode")
    st.markdown(
        "`torch.nn.BatchNorm1d` in train mode, given a batch of one sample, raises (one value per channel "
        "has no variance):"
    )
    st.code(f"ValueError: {r.bn1d_error}", language=None)
    section(
        "",
        figs.single_image(r, font),
        "tvi-single",
        "Probability the CNN gives the true class of the first "
        "test images: eval mode vs each image alone in train mode.",
        figs.notice_single_image(r),
    )
    if r.story is None:
        return
    section(
        "The story: “forgot model.eval()”",
        figs.story(r, font),
        "tvi-story",
        "The test images as a stream of frames, one forward pass each; the forgetful copy keeps updating its "
        "running statistics (PyTorch momentum convention).",
        figs.notice_story(r),
    )
    section(
        "Batch-mates",
        figs.batch_mates(r, B, font),
        "tvi-mates",
        "Softmax output for one test image "
        "placed in a batch of B with B−1 other images: of its class, mixed, or of its runner-up class.",
        figs.notice_batch_mates(r, B),
    )
    if r.finetune is not None:
        section(
            "Fine-tuning with frozen BN",
            figs.finetune(r, font),
            "tvi-finetune",
            "Two copies of the MLP fine-tuned on the same new-camera batches with BN's γ, β frozen; drift "
            "averaged over channels and layers.",
            figs.notice_finetune(r),
        )


def render_sweep(r, final: bool):
    section(
        "Small-batch training",
        figs.sweep(r, B, font),
        "tvi-sweep",
        "Each batch size trains fresh MLPs from "
        "the same initial weights, one per norm, as one stacked computation; eval mode = running statistics, "
        "train mode = the test set in batches of the training size.",
        figs.notice_sweep(r),
    )
    if r.done:
        section(
            "Online learning with a varying batch size",
            figs.stream(r, font),
            "tvi-stream",
            "Test accuracy (eval mode) every 10 steps; below, each step's batch size, drawn from 1 to "
            f"{r.spec.stream_max_batch}; learning rate × B/32.",
            figs.notice_stream(r),
        )


ui.show_run(spec.project(InferenceSpec), inference.run, render_inference, label="Training the BN MLP and CNN")
ui.reproduce(inference.pytorch_snippet(spec))
ui.show_run(spec.project(batch_size.BatchSizeSpec), batch_size.run, render_sweep, label="Sweeping batch sizes")
ui.reproduce(batch_size.pytorch_snippet(spec))
with st.expander("Formulas"):
    st.latex(
        r"\text{train: } \hat x=\frac{x-\mu_B}{\sqrt{\sigma_B^2+\epsilon}},\qquad "
        r"\text{eval: } \hat x=\frac{x-\hat\mu}{\sqrt{\hat\sigma^2+\epsilon}},\qquad y=\gamma\hat x+\beta"
    )
    st.latex(
        r"\hat\mu\leftarrow(1-m)\,\hat\mu+m\,\mu_B,\quad \hat\sigma^2\leftarrow(1-m)\,\hat\sigma^2+m\,"
        r"\tfrac{n}{n-1}\sigma_B^2\quad(\text{PyTorch's } m\text{; Keras' momentum}=1-m)"
    )
    st.latex(
        r"\text{Batch Renorm: } \hat x=\frac{x-\mu_B}{\sigma_B}\,r+d,\quad r=\mathrm{clip}_{[1/r_{max},"
        r"\,r_{max}]}\frac{\sigma_B}{\hat\sigma},\quad d=\mathrm{clip}_{[-d_{max},\,d_{max}]}"
        r"\frac{\mu_B-\hat\mu}{\hat\sigma}\ (r,d\text{ constants in backprop})"
    )
    st.caption(RENORM_VS_PAPER)
    st.latex(
        r"\text{LayerNorm / GroupNorm: } \mu,\sigma^2 \text{ over one sample's channels (or a group of "
        r"them)}\qquad \text{lr}(B)=\text{lr}\cdot B/32"
    )
