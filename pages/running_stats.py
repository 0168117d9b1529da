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
font = ui.font_size()

labels, channels = spec.row_labels(), min(spec.width, rs.TRACE_CHANNELS)
c1, c2, c3, c4 = st.columns([3, 1, 1, 2])
shown = ui.show_control(
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
    default=min(2, spec.depth),  # layer 1's input mean is 0
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


def render(result, final: bool):
    if result.diverged_at is not None:
        st.error(
            f"The network diverged at step {result.diverged_at} (its loss or a BN statistic became NaN or "
            "infinite); the charts stop there. Lower the learning rate."
        )
    ui.chart(figs.trajectories(result, layer - 1, channel - 1, shown, font), "rs-a")
    st.caption(lesson.caption_a(spec))
    ui.chart(figs.errors(result, population, shown, font), "rs-b")
    st.caption(lesson.caption_b(population))
    ui.chart(figs.accuracy(result, shown, font), "rs-c")
    st.caption(lesson.caption_c(spec))
    if final and result.precise is not None:
        st.subheader("Recalibrate (PreciseBN)")
        ui.chart(figs.precise_bn(result, shown, font), "rs-precise")
        st.caption(lesson.caption_precise(result))


ui.show_run(spec, rs.run, render)
st.subheader(f"Momentum conventions ({rs.CONVENTIONS[spec.convention]} entered)")
st.table(pd.DataFrame(rs.translation_rows(spec)))
with st.expander("Why PyTorch's running_var uses n/(n-1)"):
    st.markdown(lesson.WHY_UNBIASED)
with st.expander("Formulas"):
    for formula in lesson.FORMULAS:
        st.latex(formula)
with st.expander("What to notice"):
    st.markdown(lesson.WHAT_TO_NOTICE)
ui.reproduce(rs.pytorch_snippet(spec))
