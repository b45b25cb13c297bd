"""Home: what the app does, and one sample grid from each shipped model (and from the user's good runs)."""

import streamlit as st

from app_pages.common import get_model, sample_png
from genlab.catalog import available_models, worth_showing
from genlab.display import about
from genlab.recipes import fastest

st.title("genlab")
st.markdown(
    "Train a **VAE** or a **RealNVP** flow on real images and watch loss, bits/dim and FID update live; then "
    "sample with temperature and latent sliders and put the two families side by side.  \n"
    "Everything runs here, on this machine's CPU or GPU; nothing is downloaded unless you ask for it."
)
quick = fastest()
took = quick.expected_seconds()
st.markdown(
    f"**First run:** on **Train**, launch the preset *{quick.title}* unchanged"
    + (f": it trains in {about(took)} on {quick.where_measured()}" if took else "")
    + ", and its samples appear on **Sample** when it finishes. Every shipped model below is a preset there."
)

entries = available_models()
shipped = [e for e in entries if e.source == "shipped"]
if not shipped:
    st.info("No pretrained checkpoint ships in `checkpoints/`. Train a model on the **Train** page from a preset.")
    st.page_link("app_pages/train.py", label="Train a model", icon=":material/model_training:")

# every shipped model, then the user's finished runs that reached their preset's bits/dim (genlab.catalog)
picks = [(e, "") for e in shipped] + [(e, "your run · ") for e in entries if worth_showing(e)]
for start in range(0, len(picks), 3):
    for col, (e, whose) in zip(st.columns(3), picks[start : start + 3]):
        with col:
            if get_model(e) is None:
                continue
            scale = max(1, 256 // (4 * e.image_size))  # every grid drawn at the same width
            png = sample_png(str(e.path), e.mtime, 16, e.temperature, 0, scale)
            st.image(png, caption=f"{whose}{e.label} · T={e.temperature:g}", output_format="PNG", width="stretch")
if picks:
    st.page_link("app_pages/sample.py", label="Sample with sliders", icon=":material/casino:")

if shipped:
    st.caption(
        "Shipped checkpoints: trained with `python -m genlab checkpoints` (each model card is on the **Models** "
        "page). Your runs appear here once they finish within 10% of their preset's test bits/dim. "
        "Emoji: Twemoji graphics © Twitter, CC-BY 4.0; MNIST, CC BY-SA 3.0."
    )
st.caption(
    "Pages: **Train** launches runs in their own processes (they survive closed tabs), **Sample** explores a "
    "model, **Compare** puts a VAE and a flow side by side, **Models** shows each model card."
)
