"""genlab's Streamlit app: ``streamlit run app.py``. A router and a sidebar; the pages are in app_pages/."""

from pathlib import Path

import streamlit as st

from genlab.catalog import describe_environment

# The tab's icon is a file here (a sample of the shipped VAE): a ":material/…:" icon is fetched from Google's
# font server by the browser, and the app asks nothing of the internet.
ICON = str(Path(__file__).with_name("assets") / "icon.png")
st.set_page_config(page_title="genlab", page_icon=ICON, layout="wide")

nav = st.navigation(
    [
        st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("app_pages/sample.py", title="Sample", icon=":material/casino:"),
        st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
        st.Page("app_pages/likelihood.py", title="Likelihood", icon=":material/query_stats:"),
        st.Page("app_pages/models.py", title="Models", icon=":material/inventory_2:"),
    ]
)

env = describe_environment()
with st.sidebar:
    st.caption(f"**Device:** {env.device}")
    st.caption(f"**FID weights:** {env.fid_weights}")
    st.caption(f"**Runs:** `{env.runs}`  \n**Checkpoints:** `{env.checkpoints}`  \n**Caches:** `{env.cache}`")
    st.caption("Emoji: Twemoji graphics © Twitter, CC-BY 4.0.")

nav.run()
