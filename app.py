"""normviz: a live Batch Normalization lab. Run with `streamlit run app.py`."""

from pathlib import Path

import streamlit as st

from normviz import ui, warm
from normviz.runtime import configure_torch
from normviz.views import VIEWS

configure_torch()
ui.serve_plotly_js(Path(__file__).parent)
warm.start_once()  # the defaults and the tour's presets train in the run service at low priority, once per server
present = ui.presenter_mode()
st.set_page_config(
    page_title="normviz: BatchNorm, live",
    page_icon=":material/bar_chart:",
    layout="wide",
    initial_sidebar_state="collapsed" if present else "auto",
)
PAGES = {
    "Start": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Views": [st.Page(v.page, title=v.title, icon=f":material/{v.icon}:", url_path=v.name) for v in VIEWS],
}
page = st.navigation(PAGES)
ui.page_opened(page.url_path)
page.run()
