"""Models: shipped checkpoints and runs with a checkpoint, with their config and metrics."""
import json

import streamlit as st

from genlab.catalog import available_models, checkpoints_dir
from genlab.models import resolve_model_dir
from genlab.models.base import read_config
from genlab.rundir import summarize
from pages.common import checkpoint_zip

st.title("Models")
entries = available_models()
shipped = [e for e in entries if e.source == "shipped"]
runs = [e for e in entries if e.source == "run"]

def show(e):
    with st.expander(e.label):
        cfg = read_config(resolve_model_dir(e.path))
        cols = st.columns(4)
        cols[0].metric("model", e.model_type)
        cols[1].metric("image size", f"{e.image_size}×{e.image_size}")
        cols[2].metric("data", e.dataset or "?")
        if e.run:
            s = summarize(e.run)
            cols[3].metric("test bits/dim", f"{s.test_bpd:.3f}" if s.test_bpd is not None else "—",
                           help="the training loss's held-out value: -ELBO for a VAE, exact for a flow")
            st.caption(f"status {s.status} · step {s.step}/{s.total_steps or '?'}"
                       + (f" · FID@{s.fid_samples} {s.fid:.1f}" if s.fid is not None else ""))
        st.code(json.dumps(cfg, indent=2), language="json")
        weights = e.weights_file
        st.download_button("Download (.zip)", checkpoint_zip(str(e.path), weights.stat().st_mtime),
                           file_name=f"{e.path.name}.zip", key=f"dl_{e.source}_{e.path.name}")


st.subheader("Shipped checkpoints")
if not shipped:
    st.info(f"None: `{checkpoints_dir()}` holds no checkpoint yet. Models you train appear below as runs.")
for e in shipped:
    show(e)

st.subheader("Runs with a checkpoint")
if not runs:
    st.caption("No run has written a checkpoint yet; launch one on the Train page.")
for e in runs:
    show(e)
