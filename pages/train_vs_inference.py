import streamlit as st

from normviz import ui
from normviz.lessons import train_vs_inference as lesson
from normviz.lessons.alternatives import RENORM_VS_PAPER

ui.enter_through_app()
st.title("Train mode vs inference")
st.caption(lesson.INTRO)
spec = ui.view_controls("train_vs_inference")


ui.show_view("train_vs_inference", spec)
for code in lesson.pytorch_snippets(spec):
    ui.reproduce(code)
with st.expander("Formulas"):
    for formula in lesson.FORMULAS:
        st.latex(formula)
    st.caption(RENORM_VS_PAPER)
