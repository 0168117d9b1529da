import streamlit as st

from normviz import ui
from normviz.experiments import why_bn as why
from normviz.figures import why_bn as figs
from normviz.lessons import why_bn as lesson

ui.enter_through_app()
st.title("Why BatchNorm helps")
spec = ui.view_controls("why_bn")
view = spec.view
st.header(why.VIEW_TITLES[view], divider="gray")
st.caption(
    "Five experiments (sidebar → Experiment): "
    + " · ".join(f"**{t}**" if v == view else t for v, t in why.VIEW_TITLES.items())
    + f". Settings this one uses: {why.WhyBNSpec.used_labels(view)}."
)
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
