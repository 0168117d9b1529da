"""normviz: a live Batch Normalization lab. Run with `streamlit run app.py`."""

import streamlit as st

from normviz import warm
from normviz.runtime import configure_torch

configure_torch()
warm.start_once()  # the defaults and the tour's presets train in the run service at low priority, once per server
st.set_page_config(page_title="normviz: BatchNorm, live", page_icon=":material/bar_chart:", layout="wide")


def view(name: str, title: str, icon: str) -> st.Page:
    return st.Page(f"pages/{name}.py", title=title, icon=f":material/{icon}:", url_path=name)


PAGES = {
    "Start": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Views": [
        view("activations", "Activations", "bar_chart"),
        view("init_sweep", "Init-scale sweep", "grid_view"),
        view("running_stats", "Running statistics", "show_chart"),
        view("train_vs_inference", "Train vs inference", "compare_arrows"),
        view("alternatives", "Alternatives", "tune"),
        view("by_hand", "BN by hand", "edit_note"),
        view("why_bn", "Why BN helps", "psychology"),
    ],
}
st.navigation(PAGES).run()
