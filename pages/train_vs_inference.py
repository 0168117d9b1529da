import streamlit as st

from normviz import ui
from normviz.experiments import batch_size, inference
from normviz.experiments.norm_zoo import RENORM_VS_PAPER
from normviz.lessons import train_vs_inference as lesson

ui.enter_through_app()
st.title("Train mode vs inference")
st.caption(lesson.INTRO)
spec = ui.view_controls("train_vs_inference")


ui.show_view("train_vs_inference", spec)
ui.reproduce(inference.pytorch_snippet(spec))
ui.reproduce(batch_size.pytorch_snippet(spec))
with st.expander("Formulas"):
    for formula in lesson.FORMULAS:
        st.latex(formula)
    st.caption(RENORM_VS_PAPER)
