"""Home: what the app does, and one sample grid from each available model."""

import streamlit as st

from app_pages.common import get_model
from genlab.catalog import available_models
from genlab.explore import grid, sample
from genlab.models import MODELS
from genlab.runs.records import RunStatus

st.title("genlab")
st.markdown(
    "Train a **VAE** (64×64) or a **RealNVP** flow (32×32) on real images and watch loss, bits/dim and FID "
    "update live; then sample with temperature and latent sliders and put the two families side by side.  \n"
    "Everything runs here, on this machine's CPU or GPU; nothing is downloaded unless you ask for it."
)

entries = available_models()
shipped = [e for e in entries if e.source == "shipped"]
if not shipped:
    st.info(
        "No pretrained checkpoint ships in `checkpoints/` yet. Train a model on the **Train** page: "
        "a VAE on the emoji set reaches recognisable colours and layouts in a few CPU minutes."
    )
    st.page_link("app_pages/train.py", label="Train a model", icon=":material/model_training:")

# every shipped model, then the newest finished run of each family
picks = list(shipped)
for family in MODELS:
    picks += [e for e in entries if e.source == "run" and e.model_type == family and e.status == RunStatus.FINISHED][:1]

for start in range(0, len(picks), 3):
    for col, e in zip(st.columns(3), picks[start : start + 3]):
        with col:
            model = get_model(e)
            if model is None:
                continue
            # shipped models at the temperature their card names (where they look best), runs at T=1
            img = grid(sample(model, 16, e.temperature, seed=0), nrow=4, scale=max(1, 256 // (4 * e.image_size)))
            st.image(img, caption=f"{e.label} · T={e.temperature:g}", output_format="PNG", width="stretch")
if picks:
    st.page_link("app_pages/sample.py", label="Sample with sliders", icon=":material/casino:")

if shipped:
    st.caption(
        "Shipped checkpoints: trained with `python -m genlab checkpoints` (see each model card on the "
        "**Models** page). Emoji: Twemoji graphics © Twitter, CC-BY 4.0; MNIST, CC BY-SA 3.0."
    )
st.caption(
    "Pages: **Train** launches runs in their own processes (they survive closed tabs), **Sample** explores a "
    "model, **Compare** puts a VAE and a flow side by side, **Models** lists checkpoints and runs."
)
