import streamlit as st

from normviz import ui
from normviz.figures import why_bn as figs
from normviz.lessons import why_bn as lesson

ui.enter_through_app()
st.title("Why BatchNorm helps")
spec = ui.view_controls("why_bn")
view = spec.view
ui.chosen_experiment(spec)
shown = {}
if view == "noisy":
    shown["layer"] = (
        ui.show_control(
            "why_bn",
            "layer",
            st.segmented_control,
            "Hidden layer shown",
            range(1, spec.depth + 1),
            default=figs.default_layer(spec.depth) + 1,
            key=f"why_bn.layer{spec.depth}",
        )
        - 1
    )
ui.show_view("why_bn", spec, **shown)
with st.expander("Formulas"):
    for formula in lesson.FORMULAS[view]:
        st.latex(formula)
ui.reproduce(lesson.pytorch_snippet(spec))
