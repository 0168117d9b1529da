import streamlit as st

from normviz import ui
from normviz.experiments import alternatives as alt
from normviz.layers import NORM_LABELS
from normviz.lessons import alternatives as lesson

ui.enter_through_app()
st.title("Alternatives to BatchNorm")
spec = ui.view_controls("alternatives")
view = spec.view
ui.chosen_experiment(spec)
shown = {}
if view == "axes":
    shown["tensor_norm"] = ui.show_control(
        "alternatives",
        "tensor_norm",
        st.segmented_control,
        "The small tensor, normalised with",
        alt.AXES_KINDS,
        default="group",
        format_func=NORM_LABELS.get,
    )
ui.show_view("alternatives", spec, **shown)
if view in lesson.NOTICE:
    with st.expander("What to notice", expanded=True):
        st.markdown(lesson.NOTICE[view])
with st.expander("Formulas"):
    for formula in lesson.FORMULAS[view]:
        st.latex(formula)
ui.reproduce(lesson.pytorch_snippet(spec))
