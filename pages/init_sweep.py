import streamlit as st

from normviz import ui
from normviz.lessons import init_sweep as lesson

ui.enter_through_app()
st.title("The init-scale sweep (Deep Learning from Scratch, ch. 6)")
spec = ui.view_controls("init_sweep")
st.caption(lesson.describe(spec))
ui.show_view("init_sweep", spec)
ui.reproduce(lesson.pytorch_snippet(spec))
