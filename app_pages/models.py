"""Models: each model's card (figures, samples, training command, data and licence) for shipped checkpoints,
models pulled from the Hub and runs with a checkpoint; pull and push."""

import json
import re
from pathlib import Path

import streamlit as st

from app_pages.common import checkpoint_zip
from genlab import GenlabError, hub, names
from genlab.catalog import available_models, broken_models, checkpoints_dir, figures
from genlab.export import card_text
from genlab.models import resolve_model_dir
from genlab.models.base import read_config
from genlab.runs.grids import newest_readable, readable
from genlab.runs.summary import summarize

st.title("Models")
entries = available_models()
shipped = [e for e in entries if e.source == "shipped"]
pulled = [e for e in entries if e.source == "hub"]
runs = [e for e in entries if e.source == "run"]


def _figures_line(e) -> str:
    f = figures(e)
    bpd = f"test bits/dim **{f.bpd:.3f}** ({f.bpd_kind}; {f.bpd_source})" if f.bpd is not None else "no evaluation"
    fid = f" · FID@{f.fid_k} **{f.fid:.1f}** vs {f.fid_reference}" if f.fid is not None else ""
    return bpd + fid


def show(e):
    with st.expander(e.label):
        card = card_text(e.path) if e.source != "run" else ""
        left, right = st.columns([3, 2])
        left.markdown(_figures_line(e) + "  \n(lower is better; the same figures as on Compare)")
        grid = readable(e.path / names.SAMPLES)  # None when missing, damaged or too large to show
        if e.run is not None and grid is None:
            newest = newest_readable(e.run.samples)
            grid = newest[1] if newest else None
        if grid is not None:
            right.image(grid, caption="samples", output_format="PNG")
        if card:  # the model card as markdown (no HTML from a card is rendered), its headings two levels down
            left.markdown(re.sub(r"^(#{1,4}) ", r"\1## ", card, flags=re.M))
        elif e.run is not None:
            s, cfg = summarize(e.run), e.run.config()
            left.markdown(
                f"**{e.family.display_name}, {e.image_size}×{e.image_size}, trained on `{e.dataset}`** · status "
                f"{s.status} · step {s.step}/{s.total_steps or '?'}"
                + (f" · from the preset `{s.preset}`" if s.preset else "")
            )
            left.markdown("Training command:")
            left.code("python -m genlab " + " ".join(cfg.argv()), language="bash")
            credit = (e.run.info().dataset or {}).get("credit") if isinstance(e.run.info().dataset, dict) else None
            if credit:
                left.caption(f"Data: {credit}")
        with st.popover("Config (JSON)"):
            st.code(json.dumps(read_config(resolve_model_dir(e.path)), indent=2), language="json")
        weights = e.weights_file
        st.download_button(
            "Download (.zip)",
            checkpoint_zip(str(e.path), weights.stat().st_mtime),
            file_name=f"{e.path.name}.zip",
            key=f"dl_{e.source}_{e.path}",  # a run's best/ folder is named "best" in every run
        )


st.subheader("Shipped checkpoints")
if not shipped:
    st.info(f"None: `{checkpoints_dir()}` holds no checkpoint yet. Models you train appear below as runs.")
for e in shipped:
    show(e)

if pulled:
    st.subheader("Pulled from the Hub")
    for e in pulled:
        show(e)

broken = broken_models()
if broken:
    st.subheader("Models that cannot be offered")
    st.caption("A file of each is malformed, so no picker lists it; everything else works.")
    for i, b in enumerate(broken):
        text, button = st.columns([5, 1])
        text.warning(f"**{b.label}** ({b.source}): {b.error}")
        if b.repo_id and button.button("Remove", key=f"forget_{i}", help="take it off the list of pulled models"):
            hub.forget_pulled(b.repo_id)
            st.rerun()

st.subheader("Runs with a checkpoint")
if not runs:
    st.caption("No run has written a checkpoint yet; launch one on the Train page.")
for e in runs:
    show(e)

# -- the Hugging Face Hub ------------------------------------------------------------------------
st.subheader("Hugging Face Hub")
st.caption(
    f"Hub: `{hub.endpoint()}`. Pulled models go to the Hugging Face cache and appear in every model picker. "
    "Only safetensors are loaded; a repo with pickle weights only is refused."
)
with st.form("pull"):
    c1, c2 = st.columns([3, 1])
    repo_id = c1.text_input("Repo id", placeholder="org/name", key="pull_repo")
    revision = c2.text_input("Revision", placeholder="main", key="pull_revision")
    if st.form_submit_button("Pull from the Hub"):
        try:
            got = hub.pull(repo_id.strip(), revision.strip() or None)
            st.session_state["pulled"] = {"repo": repo_id.strip(), "path": str(got.path), "commit": got.commit}
        except hub.HubError as e:
            st.session_state.pop("pulled", None)
            st.error(f"Could not pull: {e}.")
if "pulled" in st.session_state:
    p = st.session_state["pulled"]
    st.success(f"Pulled `{p['repo']}` at commit `{(p['commit'] or '?')[:10]}`: pick it on Sample or Compare.")
    left, right = st.columns([3, 2])
    left.markdown(card_text(p["path"]) or "_This repo has no model card._")
    if (grid := readable(Path(p["path"]) / names.SAMPLES)) is not None:
        right.image(grid, caption="samples.png from the repo", output_format="PNG")

local = {str(e.path): e for e in entries if e.source != "hub"}
with st.form("push", clear_on_submit=True):  # cleared after the call: the token is not kept in the session
    source = st.selectbox(
        "Model to push", list(local), format_func=lambda p: f"{local[p].source}: {local[p].label}", key="push_source"
    )
    c1, c2 = st.columns([3, 2])
    target = c1.text_input("Repo id to push to", placeholder="your-name/genlab-vae", key="push_repo")
    token = c2.text_input("Hub token (write access; used for this push only)", type="password", key="push_token")
    private = st.checkbox("Private repo", key="push_private")
    if st.form_submit_button("Push to the Hub") and source:
        try:
            done = hub.push(source, target.strip(), private=private, token=token or None)
            st.success(f"Pushed {', '.join(done.files)} to {done.url}")
        except (GenlabError, OSError) as e:
            st.error(f"Could not push: {e}.")
        finally:
            del st.session_state["push_token"]  # used for this call only (clear_on_submit clears the field too)
