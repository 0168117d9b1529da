import streamlit as st

from normviz import ui
from normviz.figures.activations import QUANTITY_TITLES
from normviz.lessons import activations as lesson

ui.enter_through_app()
st.title("Activations with and without BatchNorm")
st.caption(lesson.INTRO)
spec = ui.view_controls("activations")
quantity = ui.show_control(
    "activations",
    "quantity",
    st.segmented_control,
    "Histogram of",
    QUANTITY_TITLES,
    default="act",
    format_func=lambda q: QUANTITY_TITLES[q].split(" (")[0],
)
ui.show_view("activations", spec, quantity=quantity)
ui.reproduce(lesson.pytorch_snippet(spec))
with st.expander("What to notice"):
    st.markdown(lesson.WHAT_TO_NOTICE)
with st.expander("Formulas (BatchNorm, training mode)"):
    for formula in lesson.FORMULAS:
        st.latex(formula)
