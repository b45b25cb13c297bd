"""Streamlit glue shared by the pages: cached model loading and the model picker.

Models are cached process-wide with ``st.cache_resource``, keyed by path and the weights'
mtime, so a run that writes a new checkpoint is reloaded and nothing heavy repeats on a
rerun. Cached models are only used in eval mode under no_grad, which is thread-safe.
"""

from __future__ import annotations

import gc
import secrets
from pathlib import Path

import streamlit as st
import torch

from genlab import GenlabError, load_model, names
from genlab.catalog import ModelEntry, available_models, export_zip
from genlab.data import load_dataset
from genlab.device import resolve_device
from genlab.explore import (
    STRIP_OFFSETS,
    decode,
    direction_strips,
    edit_latent,
    grid,
    informative_dims,
    interpolation,
    png_bytes,
    sample,
    seeded_latents,
    temperature_strip,
)
from genlab.metrics.ood import is_scored
from genlab.models import MODELS, resolve_model_dir
from genlab.settings import settings

DEVICE = str(resolve_device("auto"))

# Many visitors are many script threads: one intra-op thread each costs 17-25% less CPU per change than two,
# which spin and synchronise, so a hosted app serves more of them; one person alone gets a flow's grid faster
# with two (185 ms against 278 ms on 2 cores). Public mode takes one unless GENLAB_APP_THREADS says otherwise
# (docs/benchmarks.md, "Threads").
THREADS = settings().app_threads or (1 if settings().public else None)
if THREADS:
    torch.set_num_threads(THREADS)

# Streamlit collects garbage (gc.collect(2)) after every script run, and with torch imported that walks
# millions of long-lived objects: about 150 ms that holds the GIL for every session. This module is imported
# once per server process, after the heavy imports; freezing moves what exists now out of the collector's
# reach, so each collection walks only what script runs create (docs/benchmarks.md, "The served app's
# capacity").
gc.freeze()


@st.cache_resource(max_entries=8, show_spinner="Loading model…")
def _load(path: str, mtime: float, device: str):
    torch.set_grad_enabled(False)
    return load_model(path, map_location=device).eval()


def model_at(path: str, mtime: float):
    """The cached model at ``path`` (for functions cached by path and mtime)."""
    return _load(path, mtime, DEVICE)


def get_model(entry: ModelEntry):
    """The cached model, or None after saying why it cannot be loaded (corrupt or mismatched weights)."""
    try:
        return model_at(str(entry.path), entry.mtime)
    except (GenlabError, OSError) as e:  # a malformed model folder; an unreadable file
        st.error(f"{entry.path.name} cannot be loaded: {e}")
        return None


def session_owner() -> str:
    """This browser session's secret: in a public app, Stop, Resume and Delete act only on the runs it launched."""
    return st.session_state.setdefault("owner_token", secrets.token_urlsafe(24))


@st.cache_resource(max_entries=16, show_spinner="Loading test images…")
def test_images(dataset: str, image_size: int, n: int = 512) -> torch.Tensor:
    return load_dataset(dataset, image_size).test[:n]


@st.cache_resource(max_entries=8, show_spinner="Ranking latent dimensions by KL…")
def latent_dims(path: str, mtime: float, dataset: str, k: int):
    model = model_at(path, mtime)
    dims, kl = informative_dims(model, test_images(dataset, model.config.image_size), k)
    return dims, kl.tolist()


@st.cache_data(max_entries=32, show_spinner=False)
def temperature_strip_png(path: str, mtime: float, temperatures: tuple[float, ...], n: int, seed: int, scale: int):
    """Independent of the temperature slider, so cached: moving the slider does not redo 40 inversions. PNG
    bytes, as every image here: given a PIL image, st.image encoded a JPEG on every rerun of every visitor."""
    return png_bytes(grid(temperature_strip(model_at(path, mtime), list(temperatures), n, seed), nrow=n, scale=scale))


# The Sample page's images as PNG bytes, cached across sessions: every image is a pure function of the
# model and the page's settings (seeded), so a slider position any visitor has seen is served from
# memory, and st.image and the download button share one encoding. Without this, 20 sessions moving
# the temperature slider on 2 CPU cores waited 14.5 s (p50) per change (docs/benchmarks.md).
@st.cache_data(max_entries=1024, show_spinner=False)
def sample_png(path: str, mtime: float, n: int, temperature: float | tuple, seed: int, scale: int) -> bytes:
    return png_bytes(grid(sample(model_at(path, mtime), n, temperature, seed), scale=scale))


@st.cache_data(max_entries=1024, show_spinner=False)
def edited_png(
    path: str, mtime: float, n: int, temperature: float, seed: int, which: int, dims: tuple, offsets: tuple, scale: int
) -> bytes:
    model = model_at(path, mtime)
    z = seeded_latents(model, n, seed, temperature)[which]
    return png_bytes(grid(decode(model, edit_latent(z, list(dims), list(offsets))[None]), scale=scale))


@st.cache_data(max_entries=256, show_spinner=False)
def direction_strips_png(
    path: str, mtime: float, n: int, temperature: float, seed: int, which: int, dims: tuple, scale: int
) -> bytes:
    model = model_at(path, mtime)
    z = seeded_latents(model, n, seed, temperature)[which]
    return png_bytes(grid(direction_strips(model, z, list(dims)), nrow=len(STRIP_OFFSETS), scale=scale))


@st.cache_data(max_entries=512, show_spinner=False)
def interpolation_png(
    path: str, mtime: float, seed_a: int, seed_b: int, method: str, temperature: float, scale: int
) -> bytes:
    path_images = interpolation(model_at(path, mtime), seed_a, seed_b, steps=10, method=method, temperature=temperature)
    return png_bytes(grid(path_images, nrow=10, scale=scale))


@st.cache_data(max_entries=32, show_spinner=False)
def reconstructions_png(path: str, mtime: float, dataset: str, image_size: int, scale: int) -> bytes:
    model = model_at(path, mtime)
    x = test_images(dataset, image_size)[:8].to(model.device).float().div(255)
    return png_bytes(grid(torch.cat([x, model.reconstruct(x).float()]), nrow=8, scale=scale))


@st.cache_data(max_entries=4, show_spinner=False)
def checkpoint_zip(path: str, mtime: float) -> bytes:
    return export_zip(Path(path))


def model_picker(label: str, key: str, model_type: str | None = None, prefer=None, on_change=None) -> ModelEntry | None:
    """A selectbox over shipped checkpoints and runs with a checkpoint; None (with a note) if there are none.
    ``prefer(entry)`` picks the initial choice (default: the first, shipped before runs, newest run first);
    ``on_change(entry)`` is called when the user picks another model."""
    entries = [e for e in available_models() if model_type is None or e.model_type == model_type]
    if not entries:
        what = MODELS[model_type].display_name if model_type else "model"
        st.info(
            f"No {what} is here yet: no shipped checkpoint in `checkpoints/` and no run with a checkpoint. "
            "Train one on the **Train** page (a few minutes on a CPU)."
        )
        st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
        return None
    by_path = {str(e.path): e for e in entries}  # paths are stable across reruns; labels change with status
    index = next((i for i, e in enumerate(entries) if prefer(e)), 0) if prefer else 0
    path = st.selectbox(
        label,
        list(by_path),
        index=index,
        key=key,
        format_func=lambda p: f"{by_path[p].source}: {by_path[p].label}",
        on_change=(lambda: on_change(by_path[st.session_state[key]])) if on_change else None,
    )
    return by_path[path]


def level_temperatures(model, temperature: float):
    """The Sample page's per-level temperatures for a multi-scale flow: the slider's one temperature, or, with the
    toggle on, one slider per latent level (finest first), as a tuple the cached images take."""
    levels = model.latent_levels
    if len(levels) < 2:
        return temperature
    with st.expander("Per-level temperature"):
        on = st.toggle(
            "One temperature per latent level",
            key="per_level",
            help="A multi-scale flow factors out half of its latent at each scale: the fine levels hold texture and "
            "stroke detail, the coarse ones the layout. Cooling the coarse levels alone keeps the shapes clean and "
            "the detail varied.",
        )
        names = ["finest"] + [""] * (len(levels) - 2) + ["coarsest"]
        picked = []
        for i, (col, name, shape) in enumerate(zip(st.columns(len(levels)), names, levels)):
            if (
                not on or f"level_t_{i}" not in st.session_state
            ):  # off, they follow the main slider; on, they start there
                st.session_state[f"level_t_{i}"] = float(temperature)
            label = f"level {i + 1} {name} ({'×'.join(map(str, shape))})"
            picked.append(col.slider(label, 0.0, 1.5, step=0.05, key=f"level_t_{i}", disabled=not on))
    return tuple(picked) if on else temperature


_SCORED: set[tuple] = set()  # what is known to be scored stays so: only the misses are looked up again


def scored(model, path: str, mtime: float, dataset: str, split: str, n: int) -> bool:
    """Whether the Likelihood page can read these scores (the cache, or the model folder's ``ood/``) instead of
    computing them; remembered once true, since a page asks on every rerun."""
    key = (path, mtime, dataset, split, n)
    if key not in _SCORED and is_scored(model, dataset, split, n, shipped=resolve_model_dir(path) / names.OOD):
        _SCORED.add(key)
    return key in _SCORED
