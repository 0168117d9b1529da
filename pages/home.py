import streamlit as st

st.title("normviz: see what BatchNorm does")
st.markdown(
    """
Small networks train **live on this computer** while you watch. Every view answers one question:

- **Activations**: what each layer's activations look like with and without BatchNorm, for a given
  activation function and weight-init scale, while training runs.
- **Init-scale sweep**: the *Deep Learning from Scratch* experiment: 16 init scales, BN vs no BN.

Every control lives in the sidebar and in the page's URL: copy the link to share exactly what you see.
"""
)
st.page_link("pages/activations.py", label="Start with the Activations view", icon=":material/bar_chart:")
