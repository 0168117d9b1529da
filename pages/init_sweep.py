import streamlit as st

from normviz import ui
from normviz.experiments.init_sweep import PRESETS, InitSweepSpec, pytorch_snippet, run
from normviz.figures import activations as figs

ui.enter_through_app()
st.title("The init-scale sweep (Deep Learning from Scratch, ch. 6)")
st.caption(
    "16 weight-init stds from 1 down to 1e-4; for each, an MLP 64-100x5-10 (ReLU) with and without BN, "
    "SGD lr 0.01, batch 100, 1,000 digits, 20 epochs. All 32 networks train as one stacked computation."
)
spec = ui.spec_controls(InitSweepSpec, "sweep", presets=PRESETS)
font = ui.font_size()


def render(result, final: bool):
    if any(d is not None for d in result.diverged_at):
        st.warning("Some networks diverged (loss NaN/inf); their curves stop where they diverged.")
    ui.chart(figs.init_sweep_grid(result, font), "sweep-grid")
    st.caption("Accuracy on the 1,000 training samples in eval mode (running statistics), as the book measures it.")


ui.show_run(spec, run, render)
ui.reproduce(pytorch_snippet(spec))
with st.expander("Running stats start at 0 (the book) or at var 1 (PyTorch)?"):
    st.markdown(
        "Eval mode normalises with the running variance. PyTorch starts it at **1**; the book starts it at "
        "**0**. With a small init scale the true variance of a layer's input is tiny (about 1e-8), so for the "
        "first epochs PyTorch's running variance is still dominated by its starting 1: eval mode divides by "
        "about 1 instead of 1e-4, the activations collapse, and the eval-mode accuracy sits near 0.1 **even "
        "though training works**. At std 0.01 and below it stays there for 3 to 6 epochs (with momentum 0.1, "
        "the start still weighs 0.9^10 = 35% after one epoch of 10 steps); by epoch 20 both starts agree. "
        "Switch *Running init* to see it."
    )
