"""Train's launch form: a new run's settings, checked by ``TrainConfig`` and started by ``genlab.runs.jobs``."""

import streamlit as st
import torch

from genlab import public
from genlab.data import list_datasets
from genlab.models import MODELS, model_options
from genlab.runs import jobs
from genlab.runs.config import LR_SCHEDULES, TrainConfig
from genlab.runs.rundir import list_runs


def launch_form(root: str, max_runs: int) -> None:
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
        ema = c1.number_input(
            "Weight EMA decay (0: off)",
            0.0,
            0.99999,
            0.0,
            format="%g",
            key="ema",
            help="e.g. 0.999: samples and evaluations use the moving average of the weights",
        )
        hflip = c1.checkbox(
            "Mirror half of each batch",
            key="hflip",
            help="left-right flips of training images: doubles a small data set (emoji-faces has 98 images)",
        )
        # per-model keys: each family keeps its own defaults (genlab.models: its train_defaults and image size)
        sizes = sorted({16, 32, 64, family.default_image_size()})
        size = c2.selectbox(
            "Image size", sizes, index=sizes.index(family.default_image_size()), key=f"image_size_{model}"
        )
        by_epochs = defaults.epochs is not None
        length = c3.radio(
            "Length in", ["epochs", "steps"], index=0 if by_epochs else 1, horizontal=True, key=f"length_{model}"
        )
        amount = c3.number_input(
            "Epochs or steps", 1, 1_000_000, defaults.epochs if by_epochs else defaults.max_steps, key=f"amount_{model}"
        )
        batch = c2.number_input("Batch size", 1, 4096, defaults.batch_size, key=f"batch_size_{model}")
        lr = c3.number_input("Learning rate", 1e-6, 1.0, 1e-3, step=1e-4, format="%.0e", key="lr")
        schedule = c2.selectbox(
            "Learning-rate schedule", LR_SCHEDULES, key="lr_schedule", help="cosine: down to a tenth at the last step"
        )
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
                lr_schedule=schedule,
                device=device,
                model_config=changed,
                fid_every=int(fid_every) or None,
                fid_samples=int(fid_k),
                ema=float(ema) or None,
                hflip=bool(hflip),
                **({"epochs": int(amount)} if length == "epochs" else {"max_steps": int(amount)}),
            )
            run = jobs.launch(cfg, root, name=name or None, max_concurrent=int(max_runs), processes=int(processes))
            st.session_state["train_run"] = run.path.name
            st.toast(f"Launched {run.path.name}")
        except (
            Exception
        ) as e:  # a bad setting (ConfigError), unknown data set, name taken, unwritable folder: say which
            st.error(f"Could not launch: {e}")
