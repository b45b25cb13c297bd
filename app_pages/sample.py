"""Sample: temperature, seed and count; then what the model's family offers (genlab.models declares it):
latent sliders ranked by KL, interpolation, reconstructions, temperature strips."""

import streamlit as st

from app_pages.common import (
    direction_strips_png,
    edited_png,
    get_model,
    interpolation_png,
    latent_dims,
    level_temperatures,
    model_picker,
    reconstructions_png,
    sample_png,
    temperature_strip_png,
)
from genlab.catalog import figures

st.title("Sample")


def _card_temperature(e) -> None:
    """Each model starts at the temperature its card names (where its samples look best)."""
    st.session_state["temperature"] = e.temperature


entry = model_picker("Model", key="sample_model", on_change=_card_temperature)
if entry is None:
    st.stop()
if "temperature" not in st.session_state:
    _card_temperature(entry)
model = get_model(entry)
if model is None:
    st.stop()
scale = max(1, 96 // entry.image_size)
f = figures(entry)
if f.bpd is not None:
    fid = f" · FID@{f.fid_k} {f.fid:.1f} vs {f.fid_reference}" if f.fid is not None else ""
    st.caption(f"Test bits/dim {f.bpd:.3f} ({f.bpd_kind}; {f.bpd_source}){fid} · lower is better")

c1, c2, c3 = st.columns(3)
temperature = c1.slider(
    "Temperature",
    0.0,
    1.5,
    step=0.05,
    key="temperature",
    help=f"Standard deviation of the latent noise; 0 gives the mode-like image of z = 0. This model's card "
    f"shows it at T={entry.temperature:g}.",
)
seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
n = c3.select_slider("Samples", [4, 9, 16, 25, 36, 64], 16, key="n")

levels = level_temperatures(model, temperature)  # the slider's, or one per latent level of a flow
shown = "/".join(f"{t:.2f}" for t in levels) if isinstance(levels, tuple) else f"{temperature:.2f}"
where = (str(entry.path), entry.mtime)  # with the settings below, the cache key of every image on this page
png = sample_png(*where, n, levels, int(seed), scale)
st.image(png, caption=f"{n} samples · T={shown} · seed {seed}", output_format="PNG")
name = f"{entry.path.name}-T{shown.replace('/', '_')}-seed{seed}.png"
st.download_button("Download PNG", png, file_name=name, mime="image/png")


# The latent sliders and the interpolation controls change only their own images: as fragments, moving one
# reruns that section alone, not the grid above it (temperature, seed and count rerun everything).
@st.fragment
def latent_directions(entry, where: tuple, n: int, temperature: float, seed: int, scale: int) -> None:
    st.subheader("Latent directions")
    if entry.dataset is None:
        st.caption("The data this model was trained on is unknown, so its latent dimensions cannot be ranked.")
        return
    k = st.slider("Directions (ranked by mean KL over test images)", 1, 8, 6, key="k_dims")
    dims, kl = latent_dims(str(entry.path), entry.mtime, entry.dataset, k)
    which = st.number_input("Edit sample #", 1, n, 1, key="which") - 1
    cols = st.columns(4)
    offsets = [
        cols[i % 4].slider(f"z[{d}]  (KL {kl[d]:.2f} nats)", -3.0, 3.0, 0.0, 0.25, key=f"dim_{i}")
        for i, d in enumerate(dims)
    ]
    before, after = st.columns(2)
    before.image(
        edited_png(*where, n, temperature, seed, which, tuple(dims), (0.0,) * len(dims), 2 * scale),
        caption=f"sample #{which + 1} as drawn",
        output_format="PNG",
    )
    after.image(
        edited_png(*where, n, temperature, seed, which, tuple(dims), tuple(offsets), 2 * scale),
        caption=f"sample #{which + 1} moved by the sliders",
        output_format="PNG",
    )
    st.image(
        direction_strips_png(*where, n, temperature, seed, which, tuple(dims), scale),
        caption=f"one row per direction (z[{'], z['.join(map(str, dims))}]): sample #{which + 1} moved "
        "from −3 to +3 prior standard deviations along it, the others held",
        output_format="PNG",
    )


@st.fragment
def interpolation_section(where: tuple, temperature: float, scale: int) -> None:
    st.subheader("Interpolation")
    i1, i2, i3 = st.columns(3)
    seed_a = i1.number_input("From seed", 0, 2**31 - 1, 1, key="seed_a")
    seed_b = i2.number_input("To seed", 0, 2**31 - 1, 2, key="seed_b")
    method = i3.radio("Path", ["slerp", "linear"], horizontal=True, key="method")
    st.image(
        interpolation_png(*where, int(seed_a), int(seed_b), method, max(temperature, 0.05), scale),
        caption=f"{method} path in latent space at T={temperature:.2f}",
        output_format="PNG",
    )


if model.ranked_latents:
    latent_directions(entry, where, n, temperature, int(seed), scale)
if model.latent_shape is not None:
    interpolation_section(where, temperature, scale)

if model.reconstructs and entry.dataset:
    st.subheader("Reconstructions")
    st.image(
        reconstructions_png(*where, entry.dataset, entry.image_size, scale),
        caption="top: test images · bottom: decoder mean of their posterior mean",
        output_format="PNG",
    )
elif model.latent_shape is not None:
    st.subheader("Temperature strip")
    temps = (0.0, 0.25, 0.5, 0.75, 1.0)
    st.image(
        temperature_strip_png(str(entry.path), entry.mtime, temps, 8, int(seed), scale),
        caption="rows: T = " + ", ".join(map(str, temps)) + " · same noise in each column (as in Glow, fig. 8)",
        output_format="PNG",
    )
