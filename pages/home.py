"""Home: what the app does, and one sample grid from each available model."""
import streamlit as st

from genlab.catalog import available_models
from genlab.explore import grid, sample
from pages.common import get_model

st.title("genlab")
st.markdown("Train a **VAE** (64×64) or a **RealNVP** flow (32×32) on real images and watch loss, bits/dim and FID "
            "update live; then sample with temperature and latent sliders and put the two families side by side.  \n"
            "Everything runs here, on this machine's CPU or GPU; nothing is downloaded unless you ask for it.")

entries = available_models()
shipped = [e for e in entries if e.source == "shipped"]
if not shipped:
    st.info("No pretrained checkpoint ships in `checkpoints/` yet. Train a model on the **Train** page: "
            "a VAE on the emoji set reaches recognisable colours and layouts in a few CPU minutes.")
    st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")

# every shipped model, then the newest finished run of each family (at most four grids)
picks = list(shipped)
for family in ("vae", "realnvp"):
    picks += [e for e in entries if e.source == "run" and e.model_type == family and e.status == "finished"][:1]
picks = picks[:4]

if picks:
    cols = st.columns(len(picks))
    for col, e in zip(cols, picks):
        with col:
            model = get_model(e)
            if model is None:
                continue
            img = grid(sample(model, 16, 1.0, seed=0), nrow=4,  # T=1: the model's own distribution
                       scale=max(1, 256 // (4 * e.image_size)))
            st.image(img, caption=f"{e.label} · T=1", output_format="PNG")
    st.page_link("pages/sample.py", label="Sample with sliders", icon=":material/casino:")

st.caption("Pages: **Train** launches runs in their own processes (they survive closed tabs), **Sample** explores a "
           "model, **Compare** puts a VAE and a flow side by side, **Models** lists checkpoints and runs.")
