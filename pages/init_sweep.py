import streamlit as st

from normviz import ui
from normviz.experiments.init_sweep import describe, pytorch_snippet, run, running_init_note
from normviz.figures import activations as figs

ui.enter_through_app()
st.title("The init-scale sweep (Deep Learning from Scratch, ch. 6)")
spec = ui.view_controls("init_sweep")
st.caption(describe(spec))
font = ui.font_size()


def render(result, final: bool):
    if any(d is not None for d in result.diverged_at):
        st.warning("Some networks diverged (loss NaN/inf); their curves stop where they diverged.")
    ui.chart(figs.init_sweep_grid(result, font), "sweep-grid")
    st.caption("Accuracy on the 1,000 training samples in eval mode (running statistics), as the book measures it.")
    with st.expander("Running stats start at 0 (the book) or at var 1 (PyTorch)?"):
        st.markdown(running_init_note(result))


ui.show_run(spec, run, render)
ui.reproduce(pytorch_snippet(spec))
