import streamlit as st

from normviz import ui
from normviz.experiments import why_bn as why
from normviz.figures import why_bn as figs

ui.enter_through_app()
st.title("Why BatchNorm helps")
spec = ui.view_controls("why_bn")
font = ui.font_size()
view = spec.view
st.header(why.VIEW_TITLES[view], divider="gray")
st.caption(
    "Five experiments (sidebar → Experiment): "
    + " · ".join(f"**{t}**" if v == view else t for v, t in why.VIEW_TITLES.items())
    + f". Settings this one uses: {why.WhyBNSpec.used_labels(view)}."
)
if view == "noisy":
    layer = (
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


def render(r, final: bool):
    for model, step in zip(getattr(r, "models", ()), r.diverged_at):
        if step is not None:
            st.error(f"The {model} network diverged at step {step}; its curves stop there. Lower the learning rate.")
    if view == "lr-range":
        ui.chart(figs.lr_range(r, font), "why-lr-range")
    elif view == "landscape":
        ui.chart(figs.landscape(r, font), "why-landscape")
    elif view == "noisy":
        ui.chart(figs.noisy_distributions(r, layer, font), "why-noisy-layers")
        ui.chart(figs.noisy_summary(r, font), "why-noisy-summary")
    elif view == "scale":
        ui.chart(figs.scale(r, font), "why-scale")
        if final:
            st.dataframe(r.check_table(), hide_index=True)
    elif final:
        ui.chart(figs.adabn(r, font), "why-adabn")
    st.caption(why.caption(spec))
    if final:
        st.success(r.notice(), icon=":material/insights:")


ui.show_run(spec.sub(), why.VIEW_RUNS[view], render)
with st.expander("Formulas"):
    for formula in why.FORMULAS[view]:
        st.latex(formula)
ui.reproduce(why.pytorch_snippet(spec))
