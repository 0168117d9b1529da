import pandas as pd
import streamlit as st

from normviz import ui
from normviz.experiments import running_stats as rs
from normviz.figures import running_stats as figs
from normviz.lessons import running_stats as lesson

ui.enter_through_app()
st.title("Running statistics: what BN's momentum does")
st.caption(lesson.INTRO)
spec = ui.view_controls("running_stats", rewrite_on_switch=("convention", "momenta", rs.translated_text))

labels, channels = spec.row_labels(), min(spec.width, rs.TRACE_CHANNELS)
c1, c2, c3, c4 = st.columns([3, 1, 1, 2])
momenta_shown = ui.show_control(
    "running_stats",
    "momenta_shown",
    c1.multiselect,
    "Momenta shown (no retraining)",
    range(len(labels)),
    default=list(range(len(labels))),
    format_func=labels.__getitem__,
    key=f"running_stats.shown.{'|'.join(labels)}",
)
# layers and channels are counted from 1, in the menus and in the link
layer = ui.show_control(
    "running_stats",
    "layer",
    c2.selectbox,
    "Layer (A)",
    range(1, spec.depth + 1),
    default=lesson.first_layer(spec.depth),
    format_func=lambda i: f"layer {i}",
    key=f"running_stats.layer{spec.depth}",
)
channel = ui.show_control(
    "running_stats",
    "channel",
    c3.selectbox,
    "Channel (A)",
    range(1, channels + 1),
    default=1,
    format_func=lambda i: f"channel {i}",
    key=f"running_stats.channel{channels}",
)
population = ui.show_control(
    "running_stats",
    "population",
    c4.radio,
    "Population (B)",
    rs.POPULATIONS,
    default=next(iter(rs.POPULATIONS)),
    format_func=figs.POPULATION_NAMES.get,
    horizontal=True,
)
ui.show_view("running_stats", spec, momenta_shown=momenta_shown, layer=layer, channel=channel, population=population)
st.subheader(f"Momentum conventions ({rs.CONVENTIONS[spec.convention]} entered)")
st.table(pd.DataFrame(lesson.translation_rows(spec)))
with st.expander("Why PyTorch's running_var uses n/(n-1)"):
    st.markdown(lesson.WHY_UNBIASED)
with st.expander("Formulas"):
    for formula in lesson.FORMULAS:
        st.latex(formula)
with st.expander("What to notice"):
    st.markdown(lesson.WHAT_TO_NOTICE)
ui.reproduce(lesson.pytorch_snippet(spec))
