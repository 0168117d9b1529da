import streamlit as st

st.title("by_hand")
st.info("This view is being built.")
