import streamlit as st

st.title("alternatives")
st.info("This view is being built.")
