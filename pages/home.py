import streamlit as st

from normviz import ui, views
from normviz.lessons.tour import TOUR

ui.enter_through_app()
st.title("normviz: see what BatchNorm does")
ui.settingless_page()
st.markdown(
    "Small networks train **live on this computer** while you watch. Each link below opens a view with "
    "every control set for one lesson, and a blue box says what to notice. Everything is in the sidebar "
    "and in the page's URL, so a link reproduces exactly what you see."
)

with st.container(border=True):
    ui.share(st.context.url, "this app")
st.header(f"A {sum(s.minutes for s in TOUR)}-minute BatchNorm lecture", divider="gray")
for number, section in enumerate(TOUR, 1):
    st.subheader(f"{number}. {section.title}  ·  {section.minutes} min")
    st.markdown(section.teaches)
    for stop in section.stops:
        link, ask = st.columns([2, 3], vertical_alignment="center")
        link.page_link(
            views.view(section.view).page,
            label=stop.preset,
            icon=":material/play_circle:",
            query_params={"preset": stop.preset},
        )
        ask.caption(stop.ask)

with st.expander("Before class"):
    st.markdown(
        "- Turn on **Presenter mode** at the top of the sidebar (or open a link with `present=1`): large chart "
        "fonts on every page, and a **Next lesson** button that follows this tour.\n"
        "- Open this page once a minute or two before class: the server then trains every lesson below in the "
        "background, and finished runs are kept for everyone, so in class each lesson appears at once.\n"
        "- Under every chart, **HTML** and **PNG** download it for slides; each view has a **Reproduce in "
        "PyTorch** snippet for students.\n"
        "- A handout that works offline: `python -m normviz report --out bn-lessons.html` trains every lesson "
        "and writes all figures into one HTML file (`--list` shows the lessons, `--preset NAME` picks some)."
    )
