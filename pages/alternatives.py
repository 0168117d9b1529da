import streamlit as st

from normviz import ui
from normviz.experiments import alternatives as alt
from normviz.experiments.norm_cost import explain
from normviz.figures import alternatives as figs
from normviz.layers import NORM_LABELS
from normviz.lessons import alternatives as lesson

ui.enter_through_app()
st.title("Alternatives to BatchNorm")
spec = ui.view_controls("alternatives")
font = ui.font_size()
view = spec.view
st.header(alt.VIEW_TITLES[view], divider="gray")
st.caption(
    "Five views (sidebar → View): "
    + " · ".join(f"**{t}**" if v == view else t for v, t in alt.VIEW_TITLES.items())
    + f". Settings this view uses: {alt.AlternativesSpec.used_labels(view)}."
)


if view == "axes":
    kind = ui.show_control(
        "alternatives",
        "tensor_norm",
        st.segmented_control,
        "The small tensor, normalised with",
        alt.AXES_KINDS,
        default="group",
        format_func=NORM_LABELS.get,
    )


def percent_columns(rows):
    return {c: st.column_config.NumberColumn(format="percent") for c in rows[0] if "accuracy" in c or "share" in c}


def render(r, final: bool):
    if view == "axes":
        ui.chart(figs.axes_cube(r, font), "alt-cube")
        st.caption(lesson.CAPTIONS["axes"])
        ui.chart(figs.tensor_sets(r, kind, font), "alt-tensor")
        st.caption(lesson.CAPTIONS["tensor"])
        st.dataframe(r.table(kind), hide_index=True)
    elif view == "every-norm":
        for row in r.table():
            if row.get("diverged at step"):
                st.error(
                    f"{row['norm']} diverged at step {row['diverged at step']} (non-finite loss); its curves "
                    "stop there. Lower the learning rate."
                )
        ui.chart(figs.zoo_curves(r, font), "alt-zoo")
        st.caption(lesson.CAPTIONS["every-norm"])
        rows = r.table()
        st.dataframe(rows, hide_index=True, column_config=percent_columns(rows))
        ui.table_download(rows, "alt-every-norm-results")
        st.caption(
            f"Final accuracies at batch size {r.spec.batch_size} after {r.steps_done} steps; GroupNorm "
            f"uses G = {r.groups_used} in the first layer."
        )
    elif view == "cost":
        ui.chart(figs.cost_bars(r, font), "alt-cost")
        st.caption(lesson.CAPTIONS["cost"])
        if final and r.busy_note():
            st.warning(r.busy_note())
        if final:
            st.markdown(explain(r))
    elif view == "sync-bn":
        ui.chart(figs.sync_figure(r, font), "alt-sync")
        st.caption(lesson.CAPTIONS["sync-bn"])
        for message in r.messages():
            st.warning(message)
    else:
        ui.chart(figs.rnn_curves(r, font), "alt-rnn")
        st.caption(lesson.CAPTIONS["rnn"])
        if final:
            ui.chart(figs.rnn_bn_stats(r, font), "alt-rnn-stats")
            st.caption(lesson.CAPTIONS["rnn-stats"])
            st.markdown("**A 16-step sequence with per-step BN**, as RowRNN answers it:")
            st.code(r.refusal, language=None, wrap_lines=True)
            ui.chart(figs.rnn_long(r, font), "alt-rnn-long")
            st.caption(lesson.CAPTIONS["rnn-long"])
            st.markdown(r.long_note())


ui.show_run(spec.sub(), alt.VIEW_RUNS[view], render)
if view in lesson.NOTICE:
    with st.expander("What to notice", expanded=True):
        st.markdown(lesson.NOTICE[view])
with st.expander("Formulas"):
    for formula in lesson.FORMULAS[view]:
        st.latex(formula)
ui.reproduce(alt.pytorch_snippet(spec))
