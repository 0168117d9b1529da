import zlib

import streamlit as st

from normviz import ui
from normviz.config import SpecError
from normviz.experiments import by_hand as bh
from normviz.runs import final

PAGE = "by_hand"
ui.enter_through_app()
st.title("BatchNorm by hand")
st.caption(
    "One training step of `torch.nn.BatchNorm1d` on a small batch, formula by formula with your numbers "
    "(numpy, float64), then checked against torch itself. Edit any white cell; the link keeps your edits."
)
spec = ui.view_controls(PAGE)
result = final(bh.run(spec))
b, c = result.shape


def change(edit, *args):
    """A button/editor callback: apply an edit of the spec, or say why it cannot be applied."""
    try:
        new = edit(spec, *args)
        ui.set_controls(PAGE, bh.ByHandSpec, seed=new.seed, **{n: getattr(new, n) for n in bh.TEXT_FIELDS})
    except SpecError as exc:
        st.toast(f"Not applied: {exc}", icon=":material/warning:")


def editor(frame, table: str):
    """An editable table; its key follows the data, so a changed batch starts a fresh editor."""
    key = f"{PAGE}.{table}-editor-{zlib.crc32(spec.to_json().encode())}"

    st.data_editor(
        frame.astype(float),
        key=key,
        height="content",
        on_change=lambda: change(bh.apply_edits, table, st.session_state[key]["edited_rows"]),
    )


st.subheader("The batch and the layer")
wide = c > 3  # wide tables get the full width: stacked instead of side by side
left, right = (st.container(), st.container()) if wide else st.columns([1, 1], gap="large")
with left:
    st.markdown(f"**The batch x**: B = {b} sample{'s' * (b > 1)} (rows) × C = {c} feature{'s' * (c > 1)} (columns)")
    editor(bh.matrix_frame(result.inputs["x"]), "x")
with right:
    st.markdown("**γ, β, the running statistics before this step, and a new sample for eval mode**")
    editor(bh.params_frame(spec), "params")
st.session_state[f"{PAGE}.B"], st.session_state[f"{PAGE}.C"] = b, c
cols = st.columns([1, 1, 1, 1, 1.3, 2.7], vertical_alignment="bottom")
cols[0].number_input(
    "B (samples)", 1, 12, key=f"{PAGE}.B", on_change=lambda: change(bh.resize, st.session_state[f"{PAGE}.B"], c)
)
cols[1].number_input(
    "C (features)", 1, 6, key=f"{PAGE}.C", on_change=lambda: change(bh.resize, b, st.session_state[f"{PAGE}.C"])
)
cols[2].button("Randomise", on_click=lambda: change(bh.randomise), help="a new random batch of the same shape")
j_const = cols[3].selectbox("Feature", range(c), index=c - 1, format_func=lambda j: f"feature {j + 1}")
cols[4].button(
    "Make constant",
    on_click=lambda: change(bh.make_constant, j_const),
    help="every sample gets sample 1's value in this feature",
)
cols[5].caption(
    f"Momentum m = {result.momentum:.4g} in PyTorch's convention (weight of the new batch) = "
    f"{1 - result.momentum:.4g} in Keras'. You entered {spec.momentum:g} as "
    f"{'PyTorch' if spec.convention == 'pytorch' else 'Keras'} momentum (sidebar); ε = {spec.eps:g}."
)
for title, text, section in result.notes:
    if section == "forward":
        st.info(f"**{title}.** {text}", icon=":material/lightbulb:")

st.subheader("The forward pass, step by step")
j = (
    ui.show_control(
        PAGE,
        "feature",
        st.radio,
        "Numbers plugged into the formulas: sample 1 of",
        range(1, c + 1),
        default=result.focus() + 1,
        key=f"{PAGE}.feature{c}.{result.focus()}",  # a new batch (or preset) puts its focus first again
        horizontal=True,
        format_func=lambda k: f"feature {k}",
    )
    - 1
)
for step in bh.steps(result, j):
    st.markdown(f"**{step.title}**")
    formulas, numbers = (st.container(), st.container()) if wide else st.columns([1, 1], gap="large")
    for line in step.formula + step.worked:
        formulas.latex(line)
    numbers.dataframe(step.table.style.format("{:.4g}"), height="content")
    numbers.caption(step.caption)

st.subheader("The same step through torch.nn.BatchNorm1d")
if result.torch_error:
    st.warning(
        f"torch says: “{result.torch_error}”. The hand computation above still runs; see the note on B = 1.",
        icon=":material/block:",
    )
else:
    st.dataframe(bh.diff_table(result, ["y", "running_mean", "running_var", "y_new"]).style.format("{:.1e}"))
    st.caption(
        "Largest absolute difference between the hand computation (numpy, float64) and "
        "`nn.BatchNorm1d` with the same γ, β, ε, momentum and running statistics. In float64 it is 0 up to "
        "rounding (~1e-16); torch's float32 adds its own rounding (~1e-7, more where ε divides a tiny "
        "difference)."
        + (
            " For the biased estimator, torch's running var is refolded with "
            "torch.var(correction=0): nn.BatchNorm1d itself always uses B/(B−1)."
            if spec.var_estimator == "biased"
            else ""
        )
    )

st.subheader("The backward pass: closed form vs autograd")
st.markdown("**Upstream gradient dL/dy** (one value per sample and feature; editable, default all ones)")
editor(bh.matrix_frame(result.inputs["dy"]), "dy")
for title, text, section in result.notes:
    if section == "backward":
        st.info(f"**{title}.** {text}", icon=":material/lightbulb:")
back = bh.backward_step(result, j)
formulas, numbers = (st.container(), st.container()) if wide else st.columns([1, 1], gap="large")
for line in back.formula + back.worked:
    formulas.latex(line)
numbers.dataframe(bh.grad_frame(result).style.format("{:.4g}"))
numbers.markdown("**dL/dx** (closed form)")
numbers.dataframe(back.table.style.format("{:.4g}"), height="content")
if result.torch64 is not None:
    st.dataframe(bh.diff_table(result, ["dgamma", "dbeta", "dx"]).style.format("{:.1e}"))
    st.caption("Largest absolute difference between the closed form and autograd through `nn.BatchNorm1d`.")

with st.expander("Edge cases to try (presets in the sidebar)"):
    st.markdown(
        "- **B = 1**: `nn.BatchNorm1d` refuses to train (“Expected more than 1 value per channel”): one sample "
        "has variance 0, so x̂ = 0 and y = β for any input, and B/(B−1) divides by zero.\n"
        "- **B = 2 gives ±1**: σ_B is half the gap between the two values, so x̂ = ±1.\n"
        "- **A constant feature**: σ² = 0; ε alone keeps x̂ = 0/√ε from being 0/0, and the gradient of that "
        "feature is scaled by 1/√ε.\n"
        "- **Huge ε**: x̂ no longer has standard deviation 1; BN only centres."
    )
ui.reproduce(bh.pytorch_snippet(spec))
