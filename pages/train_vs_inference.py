import streamlit as st

st.title("train_vs_inference")
st.info("This view is being built.")
