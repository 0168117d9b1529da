import streamlit as st

from normviz import ui
from normviz.experiments import by_hand as bh
from normviz.lessons import by_hand as lesson
from normviz.runs import final

PAGE = "by_hand"
ui.enter_through_app()
st.title("BatchNorm by hand")
st.caption(lesson.INTRO)
spec = ui.view_controls(PAGE)
result = final(bh.run(spec))
b, c = result.shape
st.subheader("The batch and the layer")  # narrow tables side by side, wide ones at full width
left, right = st.columns([1, 1], gap="large") if c <= 3 else (st.container(), st.container())
with left:
    st.markdown(f"**The batch x**: B = {b} sample{'s' * (b > 1)} (rows) × C = {c} feature{'s' * (c > 1)} (columns)")
    ui.settings_table(PAGE, spec, lesson.matrix_frame(result.inputs["x"]), "x", bh.apply_edits)
with right:
    st.markdown("**γ, β, the running statistics before this step, and a new sample for eval mode**")
    ui.settings_table(PAGE, spec, lesson.params_frame(spec), "params", bh.apply_edits)
st.session_state[f"{PAGE}.B"], st.session_state[f"{PAGE}.C"] = b, c
cols = st.columns([1, 1, 1, 1, 1.3, 2.7], vertical_alignment="bottom")
size = [f"{PAGE}.B", f"{PAGE}.C"]  # an edited size resizes the batch
resize = lambda: ui.edit_settings(PAGE, spec, bh.resize, *(st.session_state[k] for k in size))  # noqa: E731
cols[0].number_input("B (samples)", 1, 12, key=size[0], on_change=resize)
cols[1].number_input("C (features)", 1, 6, key=size[1], on_change=resize)
cols[2].button(
    "Randomise", on_click=ui.edit_settings, args=(PAGE, spec, bh.randomise), help="a new random batch of the same shape"
)
j_const = cols[3].selectbox("Feature", range(c), index=c - 1, format_func=lambda j: f"feature {j + 1}")
cols[4].button("Make constant", on_click=ui.edit_settings, args=(PAGE, spec, bh.make_constant, j_const))
cols[5].caption(lesson.momentum_caption(result))
ui.draw(lesson.tips(result, "forward"))

st.subheader("The forward pass, step by step")
focus = result.focus()  # a new batch (or preset) puts its focus first again
j = ui.show_control(
    PAGE,
    "feature",
    st.radio,
    "Numbers plugged into the formulas: sample 1 of",
    range(1, c + 1),
    default=focus + 1,
    key=f"{PAGE}.feature{c}.{focus}",
    horizontal=True,
    format_func=lambda k: f"feature {k}",
)
ui.draw(lesson.steps(result, j - 1))

st.subheader("The same step through torch.nn.BatchNorm1d")
if result.torch_error:
    st.warning(lesson.torch_refused(result), icon=":material/block:")
else:
    st.dataframe(lesson.diff_table(result, ["y", "running_mean", "running_var", "y_new"]).style.format("{:.1e}"))
    st.caption(lesson.torch_diff_caption(spec))

st.subheader("The backward pass: closed form vs autograd")
st.markdown("**Upstream gradient dL/dy** (one value per sample and feature; editable, default all ones)")
ui.settings_table(PAGE, spec, lesson.matrix_frame(result.inputs["dy"]), "dy", bh.apply_edits)
ui.draw(lesson.tips(result, "backward"))
ui.draw([lesson.backward_step(result, j - 1)])
if result.torch64 is not None:
    st.dataframe(lesson.diff_table(result, ["dgamma", "dbeta", "dx"]).style.format("{:.1e}"))
    st.caption(lesson.GRADIENT_DIFF)
with st.expander("Edge cases to try (presets in the sidebar)"):
    st.markdown(lesson.EDGE_CASES)
ui.reproduce(lesson.pytorch_snippet(spec))
