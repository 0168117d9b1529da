import streamlit as st

from normviz import ui
from normviz.experiments import batch_size, inference
from normviz.experiments.inference import InferenceSpec
from normviz.experiments.norm_zoo import RENORM_VS_PAPER
from normviz.figures import train_vs_inference as figs
from normviz.lessons import train_vs_inference as lesson

ui.enter_through_app()
st.title("Train mode vs inference")
st.caption(lesson.INTRO)
spec = ui.view_controls("train_vs_inference")
font, B = ui.font_size(), spec.batch_size


def section(name: str, fig, notice: str, caption: str | None = None):
    if lesson.TITLES[name]:
        st.subheader(lesson.TITLES[name])
    ui.chart(fig, name)
    st.caption(caption or lesson.CAPTIONS[name])
    st.markdown("**What to notice**\n" + notice)


def render_inference(r, final: bool):
    for net, step in r.diverged_at.items():
        st.error(f"The {net} diverged at training step {step} (loss NaN or infinite); lower the learning rate.")
    if r.mlp is None:
        return
    section("tvi-modes", figs.train_vs_eval(r, B, font), figs.notice_train_vs_eval(r, B))
    st.subheader(lesson.BATCH_OF_ONE)
    st.markdown(lesson.BN1D_REFUSES)
    st.code(f"ValueError: {r.bn1d_error}", language=None)
    section("tvi-single", figs.single_image(r, font), figs.notice_single_image(r))
    if r.story is None:
        return
    section("tvi-story", figs.story(r, font), figs.notice_story(r))
    section("tvi-mates", figs.batch_mates(r, B, font), figs.notice_batch_mates(r, B))
    if r.finetune is not None:
        section("tvi-finetune", figs.finetune(r, font), figs.notice_finetune(r))


def render_sweep(r, final: bool):
    section("tvi-sweep", figs.sweep(r, B, font), figs.notice_sweep(r))
    if r.done:
        section("tvi-stream", figs.stream(r, font), figs.notice_stream(r), lesson.stream_caption(r.spec))


ui.show_run(spec.project(InferenceSpec), inference.run, render_inference, label="Training the BN MLP and CNN")
ui.reproduce(inference.pytorch_snippet(spec))
ui.show_run(spec.project(batch_size.BatchSizeSpec), batch_size.run, render_sweep, label="Sweeping batch sizes")
ui.reproduce(batch_size.pytorch_snippet(spec))
with st.expander("Formulas"):
    for formula in lesson.FORMULAS:
        st.latex(formula)
    st.caption(RENORM_VS_PAPER)
