"""Compare: two models side by side at the same seed and temperature (by default a VAE and a flow
trained on the same data at the same size, when there are such), with what their figures mean."""

import pandas as pd
import streamlit as st

from app_pages.common import DEVICE, get_model, model_at, model_picker, sample_png
from app_pages.temperature_curves import temperature_curves
from genlab import GenlabError, public
from genlab.catalog import available_models, comparison_notes, figures
from genlab.explore import time_sampling
from genlab.metrics.likelihood import held_out_bpd
from genlab.plots import compare_figure

st.title("Compare")
GRID_WIDTH = 384  # both grids at one display width, whatever their image size


def partners(a, b) -> bool:
    """Two families on the same data at the same size: their bits/dim describe the same task."""
    return a.model_type != b.model_type and (a.dataset, a.image_size) == (b.dataset, b.image_size)


everything = available_models()
left, right = st.columns(2)
with left:
    a_entry = model_picker("Model A", key="cmp_a", prefer=lambda e: any(partners(e, o) for o in everything))
with right:
    b_entry = model_picker("Model B", key="cmp_b", prefer=a_entry and (lambda e: partners(a_entry, e)))
if a_entry is None or b_entry is None:
    st.stop()
entries = {"A": a_entry, "B": b_entry}
models = {k: get_model(e) for k, e in entries.items()}
if any(m is None for m in models.values()):
    st.stop()


# The grids have their own temperature and seed: as a fragment, moving them redraws the two grids alone, not
# the table and the curves below.
@st.fragment
def grids(entries: dict, models: dict) -> None:
    c1, c2 = st.columns(2)
    temperature = c1.slider("Temperature", 0.0, 1.5, 0.7, 0.05, key="cmp_temperature")
    seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="cmp_seed")
    for col, (name, e) in zip(st.columns(2), entries.items()):
        col.image(
            sample_png(str(e.path), e.mtime, 16, temperature, int(seed), max(1, 96 // e.image_size)),
            caption=f"{models[name].display_name}: {e.path.name}, {e.image_size}×{e.image_size}, T={temperature:.2f}",
            output_format="PNG",
            width=GRID_WIDTH,
        )


grids(entries, models)


@st.cache_data(max_entries=16, show_spinner="Timing the samplers…")
def _seconds_per_image(path: str, mtime: float, device: str) -> float:
    return time_sampling(model_at(path, mtime), 16).seconds_per_image


@st.cache_data(max_entries=16, show_spinner="Computing the tighter bound (IWAE k=100 for a VAE)…")
def _tight_bpd(path: str, mtime: float, dataset: str, n: int):
    r = held_out_bpd(model_at(path, mtime), dataset, None, n)
    return r.bpd, r.kind, r.images


tight = st.toggle(
    "Also compute each model's tightest bound here (IWAE k=100 for a VAE; about 10 s per 100 images on a CPU)",
    key="cmp_bpd",
)
n_test = st.number_input("Test images for that bound", 16, public.cap_bound_images(2000), 128, key="cmp_n")
figs = {name: figures(e) for name, e in entries.items()}
rows = []
for name, e in entries.items():
    f, m = figs[name], models[name]
    row = {
        "model": m.display_name,
        "checkpoint": e.path.name,
        "data": f"{e.dataset or '?'}, {e.image_size}×{e.image_size}",
        "test bits/dim ↓": f"{f.bpd:.3f}" if f.bpd is not None else "—",
        "bits/dim is": f.bpd_kind,
        "evaluated on": f.bpd_source,
        "FID ↓": f"{f.fid:.1f}" if f.fid is not None else "—",
        "FID@K, reference": f"K={f.fid_k} vs {f.fid_reference}" if f.fid is not None else "no FID recorded",
        "parameters": f"{m.num_parameters():,}",
        "ms/image": f"{1000 * _seconds_per_image(str(e.path), e.mtime, DEVICE):.2f} ({DEVICE})",
    }
    if tight and e.dataset:
        try:
            v, kind, n = _tight_bpd(str(e.path), e.mtime, e.dataset, public.cap_bound_images(int(n_test)))
            row["tighter bound ↓"] = f"{v:.3f} ({kind}, {n} images)"
        except GenlabError as err:  # its data set is not here, or not for this public app
            row["tighter bound ↓"] = f"not computed: {err}"
    rows.append(row)
# one column per model and one row per figure: every cell is shown whole, wrapped where it is long
keys = list(dict.fromkeys(k for row in rows for k in row))
st.table(pd.DataFrame({f"Model {n}": [row.get(k, "—") for k in keys] for n, row in zip(entries, rows)}, index=keys))

notes = comparison_notes(a_entry, b_entry, figs["A"], figs["B"])
for n in notes:
    st.warning(n)
with st.expander("How to read this", expanded=not notes):
    st.markdown(
        "- **Lower is better** for both bits/dim and FID (↓).\n"
        "- **Test bits/dim** is the negative log-likelihood of held-out images per subpixel, in bits, over 8-bit "
        "pixels: 8 is a uniform guess. A flow's is *exact*; a VAE's is its loss, the *−ELBO*, an upper bound: "
        "its true value is lower, and the IWAE bound (the toggle above) is a tighter one. This is the same "
        "figure the Models page and the model card show, and the table says which evaluation produced it.\n"
        "- **FID@K** compares K generated images at T=1 with a reference set of training images through "
        "Inception features. With a small reference set (emoji faces have 98 training images) it is biased "
        "upwards and only comparable at the same K and reference.\n"
        "- **Likelihood is not sample quality.** A model can have the better bits/dim and the worse-looking "
        'samples (Theis, van den Oord, Bethge, "A note on the evaluation of generative models", ICLR 2016): '
        "bits/dim score every pixel of held-out images, FID the look of samples. Judge both, and the grids.\n"
        "- **ms/image** is the time to sample one image in a batch of 16 on this machine."
    )
weights = {f.fid_weights for f in figs.values() if f.fid_weights}
if weights:
    st.caption("FID weights: " + "; ".join(sorted(weights)))

curves = {e.path.name: e.run.read_metrics() for e in entries.values() if e.run}
if curves:
    st.plotly_chart(compare_figure(curves), key="cmp_curves")

temperature_curves(entries, models)
