"""normviz: a live Batch Normalization lab. Run with `streamlit run app.py`."""

import streamlit as st

from normviz.runtime import configure_torch

configure_torch()
st.set_page_config(page_title="normviz: BatchNorm, live", page_icon="📊", layout="wide")

PAGES = {
    "Start": [st.Page("pages/home.py", title="Home", icon="🏠", default=True)],
    "Views": [
        st.Page("pages/activations.py", title="Activations", icon="📊", url_path="activations"),
        st.Page("pages/init_sweep.py", title="Init-scale sweep", icon="🧮", url_path="init-sweep"),
        st.Page("pages/running_stats.py", title="Running statistics", icon="📈", url_path="running-stats"),
        st.Page("pages/train_vs_inference.py", title="Train vs inference", icon="🔀", url_path="train-vs-inference"),
        st.Page("pages/alternatives.py", title="Alternatives", icon="🧰", url_path="alternatives"),
        st.Page("pages/by_hand.py", title="BN by hand", icon="✍️", url_path="by-hand"),
    ],
}
st.navigation(PAGES).run()
