"""Sample: temperature, seed and count; then what the model's family offers (genlab.models declares it):
latent sliders ranked by KL, interpolation, reconstructions, temperature strips."""

import streamlit as st
import torch

from genlab.explore import decode, edit_latent, grid, interpolation, png_bytes, sample, seeded_latents
from pages.common import get_model, latent_dims, model_picker, temperature_strip_image, test_images

st.title("Sample")
entry = model_picker("Model", key="sample_model")
if entry is None:
    st.stop()
model = get_model(entry)
if model is None:
    st.stop()
scale = max(1, 96 // entry.image_size)

c1, c2, c3 = st.columns(3)
temperature = c1.slider(
    "Temperature",
    0.0,
    1.5,
    entry.temperature,
    0.05,
    key="temperature",
    help="Standard deviation of the latent noise; 0 gives the mode-like image of z = 0.",
)
seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
n = c3.select_slider("Samples", [4, 9, 16, 25, 36, 64], 16, key="n")

samples = sample(model, n, temperature, int(seed))
img = grid(samples, scale=scale)
st.image(img, caption=f"{n} samples · T={temperature:.2f} · seed {seed}", output_format="PNG")
st.download_button(
    "Download PNG", png_bytes(img), file_name=f"{entry.path.name}-T{temperature:.2f}-seed{seed}.png", mime="image/png"
)

if model.ranked_latents:
    st.subheader("Latent directions")
    if entry.dataset is None:
        st.caption("The data this model was trained on is unknown, so its latent dimensions cannot be ranked.")
    else:
        k = st.slider("Directions (ranked by mean KL over test images)", 1, 8, 6, key="k_dims")
        dims, kl = latent_dims(str(entry.path), entry.mtime, entry.dataset, k)
        which = st.number_input("Edit sample #", 1, n, 1, key="which") - 1
        cols = st.columns(4)
        offsets = [
            cols[i % 4].slider(f"z[{d}]  (KL {kl[d]:.2f} nats)", -3.0, 3.0, 0.0, 0.25, key=f"dim_{i}")
            for i, d in enumerate(dims)
        ]
        z = seeded_latents(model, n, int(seed), temperature)[which]
        edited = decode(model, edit_latent(z, dims, offsets)[None])
        st.image(
            grid(edited, scale=2 * scale),
            caption=f"sample #{which + 1} moved along {len(dims)} directions",
            output_format="PNG",
        )

if model.latent_shape is not None:
    st.subheader("Interpolation")
    i1, i2, i3 = st.columns(3)
    seed_a = i1.number_input("From seed", 0, 2**31 - 1, 1, key="seed_a")
    seed_b = i2.number_input("To seed", 0, 2**31 - 1, 2, key="seed_b")
    method = i3.radio("Path", ["slerp", "linear"], horizontal=True, key="method")
    path = interpolation(model, int(seed_a), int(seed_b), steps=10, method=method, temperature=max(temperature, 0.05))
    st.image(
        grid(path, nrow=10, scale=scale),
        caption=f"{method} path in latent space at T={temperature:.2f}",
        output_format="PNG",
    )

if model.reconstructs and entry.dataset:
    st.subheader("Reconstructions")
    x = test_images(entry.dataset, entry.image_size)[:8].to(model.device).float().div(255)
    pairs = model.reconstruct(x).float()
    st.image(
        grid(torch.cat([x, pairs]), nrow=8, scale=scale),
        caption="top: test images · bottom: decoder mean of their posterior mean",
        output_format="PNG",
    )
elif model.latent_shape is not None:
    st.subheader("Temperature strip")
    temps = (0.0, 0.25, 0.5, 0.75, 1.0)
    st.image(
        temperature_strip_image(str(entry.path), entry.mtime, temps, 8, int(seed), scale),
        caption="rows: T = " + ", ".join(map(str, temps)) + " · same noise in each column (as in Glow, fig. 8)",
    )
