import streamlit as st

from normviz import ui
from normviz.experiments.activations import PROBE_BATCH, pytorch_snippet, run
from normviz.figures import activations as figs

ui.enter_through_app()
st.title("Activations with and without BatchNorm")
st.caption("Two MLPs start from identical weights and train on the same batches; only one has BatchNorm.")
spec = ui.view_controls("activations")
font = ui.font_size()
quantity = ui.show_control(
    "activations",
    "quantity",
    st.segmented_control,
    "Histogram of",
    figs.QUANTITY_TITLES,
    default="act",
    format_func=lambda q: figs.QUANTITY_TITLES[q].split(" (")[0],
)


def render(result, final: bool):
    for model, step in zip(result.models, result.diverged_at):
        if step is not None:
            st.error(
                f"The {model} network diverged at step {step} (its loss became NaN or infinite); "
                "its charts stop there. Lower the learning rate."
            )
    ui.chart(figs.layer_histograms(result, quantity or "act", font, animate=final), "act-hist")
    st.caption(
        f"Bars: share of a fixed probe batch (the first {PROBE_BATCH} training samples) per bin; bin edges are "
        "fixed at step 0 and values outside them count in the end bins. Drag the step slider or press play."
    )
    ui.chart(figs.training_curves(result, font), "act-curves")
    ui.chart(figs.layer_stats(result, font), "act-stats")


ui.show_run(spec, run, render)
ui.reproduce(pytorch_snippet(spec))
with st.expander("What to notice"):
    st.markdown(
        "- **No BN, tiny init** (std 0.01): each layer shrinks its input, so deep activations collapse "
        "to a spike at 0 and the gradients vanish; the network stays at chance.\n"
        "- **With BN** the same weights give every layer unit-scale inputs, whatever the init scale.\n"
        "- **Sigmoid/tanh with std 1** saturate without BN (mass at the ends of the range)."
    )
with st.expander("Formulas (BatchNorm, training mode)"):
    st.latex(r"\mu_B=\frac1m\sum_{i=1}^m x_i,\qquad \sigma_B^2=\frac1m\sum_{i=1}^m (x_i-\mu_B)^2")
    st.latex(r"\hat x_i=\frac{x_i-\mu_B}{\sqrt{\sigma_B^2+\epsilon}},\qquad y_i=\gamma\hat x_i+\beta")
