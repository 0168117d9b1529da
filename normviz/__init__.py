"""normviz: a live Batch Normalization lab. The backend is free of Streamlit except `normviz.ui`."""
