import streamlit as st

st.title("running_stats")
st.info("This view is being built.")
