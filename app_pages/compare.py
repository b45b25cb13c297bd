"""Compare: two models side by side at the same seed and temperature (by default a VAE and a flow
trained on the same data at the same size, when there are such)."""

import streamlit as st

from app_pages.common import DEVICE, get_model, model_at, model_picker
from genlab.catalog import available_models
from genlab.explore import grid, sample, time_sampling
from genlab.export import read_metrics
from genlab.metrics.likelihood import held_out_bpd
from genlab.plots import compare_figure
from genlab.runs.records import FidRow, rows_of
from genlab.runs.rundir import summarize

st.title("Compare")


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

c1, c2 = st.columns(2)
temperature = c1.slider("Temperature", 0.0, 1.5, 0.7, 0.05, key="cmp_temperature")
seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="cmp_seed")
for col, (name, m) in zip(st.columns(2), models.items()):
    col.image(
        grid(sample(m, 16, temperature, int(seed)), nrow=4, scale=max(1, 96 // m.config.image_size)),
        caption=f"{m.display_name}: {entries[name].path.name}, T={temperature:.2f}, seed {seed}",
        output_format="PNG",
    )


@st.cache_data(max_entries=16, show_spinner="Timing the samplers…")
def _seconds_per_image(path: str, mtime: float, device: str) -> float:
    return time_sampling(model_at(path, mtime), 16).seconds_per_image


@st.cache_data(max_entries=16, show_spinner="Computing test bits/dim (IWAE for the VAE)…")
def _bpd(path: str, mtime: float, dataset: str, k: int | None, n: int):
    r = held_out_bpd(model_at(path, mtime), dataset, k, n)
    return r.bpd, r.kind, r.images


same_size = a_entry.image_size == b_entry.image_size
same_data = a_entry.dataset == b_entry.dataset and a_entry.dataset is not None
if not same_size:
    st.warning(
        f"Bits/dim are only compared at equal image size: A is {a_entry.image_size}×{a_entry.image_size}, "
        f"B {b_entry.image_size}×{b_entry.image_size}. The values below describe different tasks; train "
        "one at the other's size (Train page, image size) for a like-for-like comparison."
    )
n_test = st.number_input("Test images for bits/dim", 16, 10_000, 128, key="cmp_n")
want_bpd = st.toggle(
    "Compute held-out bits/dim (each model's tightest bound: IWAE k=100 for a VAE, ~10 s per 100 images on a CPU)",
    key="cmp_bpd",
)

rows, cards = [], []
for name, e in entries.items():
    s = summarize(e.run) if e.run else None
    bpd = "—"
    if want_bpd and e.dataset:
        v, kind, n = _bpd(str(e.path), e.mtime, e.dataset, None, int(n_test))
        bpd = f"{v:.3f} ({kind}, {n} {e.dataset} test images)"
    elif not e.dataset:
        bpd = "— (training data unknown)"
    card = read_metrics(e.path)  # an exported model's figures (shipped or pulled)
    cards.append(card)
    fid = (
        f"{card['fid']:.1f} @ K={card['fid_samples']}"
        if card.get("fid") is not None
        else f"{s.fid:.1f} @ K={s.fid_samples}"
        if s and s.fid is not None
        else "— (no FID rows: train with FID every N)"
    )
    rows.append(
        {
            "model": models[name].display_name,
            "checkpoint": e.path.name,
            "data": e.dataset or "?",
            "size": f"{e.image_size}×{e.image_size}",
            "test bits/dim": bpd,
            "FID@K": fid,
            "parameters": f"{models[name].num_parameters():,}",
            "sampling ms/image": f"{1000 * _seconds_per_image(str(e.path), e.mtime, DEVICE):.2f} ({DEVICE})",
        }
    )
st.dataframe(rows, hide_index=True)
fid_sources = {r.fid_weights for e in entries.values() if e.run for r in rows_of(e.run.read_metrics(), FidRow)}
fid_sources |= {w for card in cards if (w := card.get("fid_weights"))}
if fid_sources:
    st.caption("FID weights: " + "; ".join(sorted(fid_sources)))
if not same_data:
    st.caption("The two models were not trained on the same data set, so their numbers describe different tasks.")

curves = {e.path.name: e.run.read_metrics() for e in entries.values() if e.run}
if curves:
    st.plotly_chart(compare_figure(curves), key="cmp_curves")
