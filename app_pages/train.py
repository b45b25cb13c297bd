"""Train: launch runs as background processes, watch them live, stop and resume them."""

import streamlit as st
import torch

from app_pages.common import checkpoint_zip
from genlab import public
from genlab.catalog import runs_dir
from genlab.data import list_datasets
from genlab.display import duration, run_row
from genlab.models import MODELS, model_options
from genlab.plots import fid_figure, loss_figure
from genlab.runs import jobs
from genlab.runs.config import TrainConfig
from genlab.runs.records import RunStatus
from genlab.runs.rundir import RunDir, list_runs, summarize

st.title("Train")
with st.expander("Settings"):
    if public.enabled():  # a hosted app: the runs folder and the caps are the server's, not the visitor's
        lim = public.limits()
        root, max_runs = str(runs_dir()), lim.max_runs
        st.caption(
            f"Public app: runs go to `{root}`; at most {lim.max_runs} train at once, each capped at "
            f"{lim.max_steps} steps and {lim.max_minutes:g} minutes."
        )
    else:
        root = st.text_input("Runs folder", str(runs_dir()), key="runs_root")
        max_runs = st.number_input(
            "Runs at once (more are queued)", 1, 8, jobs.default_max_concurrent(), key="max_runs"
        )

# -- launch form ------------------------------------------------------------------------------
datasets = {d.name: d for d in list_datasets()}
new_run = st.expander("New run", expanded=not list_runs(root))
model = new_run.radio(
    "Model",
    sorted(MODELS, reverse=True),
    horizontal=True,
    key="train_model",
    format_func=lambda m: (
        f"{MODELS[m].display_name} ({MODELS[m].default_image_size()}×{MODELS[m].default_image_size()})"
    ),
)
family, defaults = MODELS[model], MODELS[model].train_defaults
with new_run, st.form("launch"):
    c1, c2, c3 = st.columns(3)
    dataset = c1.selectbox(
        "Dataset",
        list(datasets) + ["folder:…"],
        key="dataset",
        format_func=lambda n: (
            n
            if n not in datasets
            else f"{n} ({datasets[n].count or '?'} images)"
            if datasets[n].available
            else f"{n} (unavailable here)"
        ),
    )
    folder = c1.text_input("Folder or .zip of images (for folder:…)", key="folder")
    # per-model keys: each family keeps its own defaults (genlab.models: its train_defaults and image size)
    sizes = sorted({16, 32, 64, family.default_image_size()})
    size = c2.selectbox("Image size", sizes, index=sizes.index(family.default_image_size()), key=f"image_size_{model}")
    by_epochs = defaults.epochs is not None
    length = c3.radio(
        "Length in", ["epochs", "steps"], index=0 if by_epochs else 1, horizontal=True, key=f"length_{model}"
    )
    amount = c3.number_input(
        "Epochs or steps", 1, 1_000_000, defaults.epochs if by_epochs else defaults.max_steps, key=f"amount_{model}"
    )
    batch = c2.number_input("Batch size", 1, 4096, defaults.batch_size, key=f"batch_size_{model}")
    lr = c3.number_input("Learning rate", 1e-6, 1.0, 1e-3, step=1e-4, format="%.0e", key="lr")
    st.markdown("**Model size**")
    opts, kcols = {}, st.columns(4)
    for i, (name, f) in enumerate(model_options(model).items()):
        widget = kcols[i % 4].number_input
        opts[name] = widget(
            name.replace("_", " "),
            value=f.default,
            key=f"opt_{model}_{name}",
            **({"step": 1} if isinstance(f.default, int) else {"format": "%g"}),
        )
    f1, f2, f3, f4 = st.columns(4)
    fid_every = f1.number_input("FID every N steps (0: off)", 0, 1_000_000, 0, key="fid_every")
    fid_k = f2.number_input("FID samples K", 50, 50_000, 1000, key="fid_k")
    device = f3.selectbox("Device", ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else []), key="device")
    name = f4.text_input("Run name (optional)", key="run_name")
    gpus = 0 if public.enabled() else torch.cuda.device_count()
    # more than one GPU: train with one process per GPU (torchrun + DDP); the batch size stays the global batch
    processes = f3.number_input("GPUs", 1, gpus, gpus, key="gpus") if gpus > 1 else 1
    launched = st.form_submit_button("Launch run", type="primary")

if launched:
    ds = f"folder:{folder}" if dataset == "folder:…" else dataset
    changed = {k: v for k, v in opts.items() if v != model_options(model)[k].default}
    try:
        cfg = TrainConfig(
            model=model,
            dataset=ds,
            image_size=int(size),
            batch_size=int(batch),
            lr=float(lr),
            device=device,
            model_config=changed,
            fid_every=int(fid_every) or None,
            fid_samples=int(fid_k),
            **({"epochs": int(amount)} if length == "epochs" else {"max_steps": int(amount)}),
        )
        run = jobs.launch(cfg, root, name=name or None, max_concurrent=int(max_runs), processes=int(processes))
        st.session_state["train_run"] = run.path.name
        st.toast(f"Launched {run.path.name}")
    except Exception as e:  # a bad setting (ConfigError), unknown data set, name taken, unwritable folder: say which
        st.error(f"Could not launch: {e}")


# -- runs -------------------------------------------------------------------------------------
@st.fragment(run_every=2.0)
def live():
    runs = list_runs(root)
    if not runs:
        st.caption(f"No runs in `{root}` yet.")
        return
    names = [r.path.name for r in runs]
    st.dataframe(
        [run_row(s) for s in map(summarize, runs)],
        hide_index=True,
        height=min(38 * (len(runs) + 1), 250),
        key="run_table",
    )
    pick = st.selectbox("Run", names, key="train_run")
    run = RunDir(runs[names.index(pick)].path)
    s, rows = summarize(run), run.read_metrics()
    st.progress(
        min(1.0, s.progress or 0.0),
        text=f"**{s.status}** · step {s.step}/{s.total_steps or '?'} · "
        f"{s.images_per_s or 0:.0f} images/s · ETA {duration(s.eta_s)}",
    )
    if s.error:
        st.error(s.error)
    if s.warning:
        st.warning(s.warning)
    b1, b2, b3 = st.columns(3)
    if b1.button("Stop run", disabled=not s.status.active, key="stop"):
        jobs.stop(run)
        st.toast(f"Stopping {pick}: it checkpoints and exits")
    if b2.button("Resume run", disabled=not s.status.resumable, key="resume"):
        try:
            jobs.resume(run, int(max_runs))
        except (RuntimeError, ValueError) as e:  # another session resumed it a moment ago; an unreadable run.json
            st.error(str(e))
    weights = run.weights_file
    if weights.is_file():
        b3.download_button(
            "Download checkpoint (.zip)",
            checkpoint_zip(str(run.path), weights.stat().st_mtime),
            file_name=f"{pick}.zip",
            key="dl",
        )
    c1, c2 = st.columns([3, 2])
    with c1:
        st.plotly_chart(loss_figure(rows), key="loss_chart")
        fig = fid_figure(rows)
        if fig is not None:
            st.plotly_chart(fig, key="fid_chart")
    with c2:
        grid = run.latest_samples()
        if grid is not None:
            st.image(str(grid), caption=f"samples at {grid.stem}", output_format="PNG")
    log = run.log_path
    if s.status in (RunStatus.FAILED, RunStatus.INTERRUPTED) and log.is_file():
        with st.expander("Process log (last lines)"):
            st.code("\n".join(log.read_text(errors="replace").splitlines()[-30:]))


live()
