"""Train's launch form: a preset (a shipped checkpoint's recipe) or Custom fills every field; the run's
``TrainConfig`` is the preset's with the form's values on top, checked there and started by ``genlab.runs.jobs``."""

import dataclasses

import streamlit as st
import torch

from app_pages.common import session_owner
from genlab import GenlabError, public
from genlab.config import field_spec
from genlab.data import list_datasets
from genlab.display import about
from genlab.models import MODELS, model_options
from genlab.recipes import SHIPPED, fastest, recipe
from genlab.runs import jobs
from genlab.runs.config import TrainConfig
from genlab.runs.sinks import available as installed_trackers
from genlab.runs.summary import list_runs

CUSTOM = "custom"
FOLDER = "folder:…"


def _family_defaults(model: str) -> TrainConfig:
    d = MODELS[model].train_defaults
    return TrainConfig(model=model, batch_size=d.batch_size, epochs=d.epochs, max_steps=d.max_steps)


def _fill(cfg: TrainConfig) -> None:
    """Set every field of the form to ``cfg`` (the widgets read these keys on the next render)."""
    ss = st.session_state
    ss.update(
        train_model=cfg.model,
        dataset=cfg.dataset,
        image_size=cfg.image_size,
        length="steps" if cfg.max_steps else "epochs",
        amount=cfg.max_steps or cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        lr_schedule=cfg.lr_schedule,
        ema=cfg.ema or 0.0,
        hflip=cfg.hflip,
        fid_every=cfg.fid_every or 0,
        fid_samples=cfg.fid_samples,
        log_to=[n for n in cfg.log.split(",") if n],
    )
    for name, f in model_options(cfg.model).items():
        ss[f"opt_{cfg.model}_{name}"] = cfg.model_config.get(name, f.default)


def _on_preset() -> None:
    name = st.session_state["_preset"] = st.session_state["preset"]  # "_preset" outlives a visit to another page
    if name != CUSTOM:
        _fill(recipe(name).config())


def _on_model() -> None:
    st.session_state["preset"] = st.session_state["_preset"] = CUSTOM
    _fill(_family_defaults(st.session_state.get("train_model", "vae")))


def _kept_preset(preset: str, cfg: TrainConfig) -> str | None:
    """The preset a run is recorded (and named) as: only while it is still that recipe's kind of run, its
    model, data and image size; other fields may change (a run of another length is still that preset's)."""
    if preset == CUSTOM:
        return None
    r = recipe(preset).config()
    return preset if (cfg.model, cfg.dataset, cfg.image_size) == (r.model, r.dataset, r.image_size) else None


def _preset_label(name: str) -> str:
    if name == CUSTOM:
        return "Custom: set every field yourself"
    r = recipe(name)
    t = r.expected_seconds()
    return f"{r.title} · {about(t)} on {r.where_measured()}" if t else r.title


def _number(col, label: str, name: str, **kw):
    """A number widget for ``TrainConfig`` field ``name``, with the bounds and help the library declares for it
    (0 stands for "off" in an optional field). A value the config refuses is said in one sentence on Launch."""
    spec = field_spec(TrainConfig, name)
    return col.number_input(label, key=name, help=spec.help or None, **spec.widget_bounds(), **kw)


def _length_help() -> str:
    steps, epochs = field_spec(TrainConfig, "max_steps"), field_spec(TrainConfig, "epochs")
    return f"steps: {steps.help}; epochs: {epochs.help}"


def _trackers() -> list[str]:
    """The trackers this Python has (``--log``), offered outside public mode; the install line when none is."""
    if public.enabled():
        return []
    found = installed_trackers()
    if not found:
        st.caption("To also log runs to TensorBoard, W&B or trackio: `pip install 'genlab[trackers]'`.")
        return []
    return st.multiselect(
        "Also log to",
        found,
        key="log_to",
        placeholder="none: genlab's own files only",
        help=field_spec(TrainConfig, "log").help,
    )


def launch_form(root: str, max_runs: int) -> None:  # noqa: C901, PLR0915 - to split (one screen per function)
    datasets = {d.name: d for d in list_datasets()}
    if "preset" not in st.session_state:  # a first visit (or back from another page): every field filled
        st.session_state["preset"] = st.session_state.get("_preset", fastest().name)
        _on_preset() if st.session_state["preset"] != CUSTOM else _on_model()
    new_run = st.expander("New run", expanded=not list_runs(root))
    preset = new_run.selectbox(
        "Start from",
        [r.name for r in SHIPPED] + [CUSTOM],
        key="preset",
        on_change=_on_preset,
        format_func=_preset_label,
        help="Each preset is the recipe of a shipped checkpoint: launch it unchanged and you get that kind of "
        "picture. Change any field below to experiment from there.",
    )
    model = new_run.radio(
        "Model",
        sorted(MODELS, reverse=True),
        horizontal=True,
        key="train_model",
        on_change=_on_model,
        format_func=lambda m: MODELS[m].display_name,
    )

    def dataset_label(n: str) -> str:
        if n not in datasets:
            return n
        d = datasets[n]
        if not d.available:
            return f"{n} (unavailable here)"
        return f"{n} (needs internet)" if d.needs_network else f"{n} ({d.count or '?'} images)"

    with new_run, st.form("launch"):
        c1, c2, c3 = st.columns(3)
        dataset = c1.selectbox("Dataset", list(datasets) + [FOLDER], key="dataset", format_func=dataset_label)
        folder = c1.text_input("Folder or .zip of images (for folder:…)", key="folder")
        ema = _number(c1, "Weight EMA decay (0: off)", "ema", format="%g")
        hflip = c1.checkbox("Mirror half of each batch", key="hflip", help=field_spec(TrainConfig, "hflip").help)
        sizes = sorted({16, 32, 64, st.session_state.get("image_size") or MODELS[model].default_image_size()})
        size = c2.selectbox("Image size", sizes, key="image_size")
        length = c3.radio("Length in", ["steps", "epochs"], horizontal=True, key="length")
        amount = c3.number_input("Steps or epochs", min_value=1, key="amount", help=_length_help())
        batch = _number(c2, "Batch size", "batch_size")
        lr = _number(c3, "Learning rate", "lr", step=1e-4, format="%.0e")
        spec = field_spec(TrainConfig, "lr_schedule")
        schedule = c2.selectbox("Learning-rate schedule", spec.choices, key="lr_schedule", help=spec.help)
        st.markdown("**Model size**")
        opts, kcols = {}, st.columns(4)
        for i, (name, f) in enumerate(model_options(model).items()):
            label, key, tip = name.replace("_", " "), f"opt_{model}_{name}", f.metadata.get("help") or None
            if isinstance(f.default, bool):  # a switch, e.g. the VAE's coupled colour channels
                opts[name] = kcols[i % 4].checkbox(label, key=key, help=tip)
                continue
            opts[name] = kcols[i % 4].number_input(
                label, key=key, help=tip, **({"step": 1} if isinstance(f.default, int) else {"format": "%g"})
            )
        f1, f2, f3, f4 = st.columns(4)
        fid_every = _number(f1, "FID every N steps (0: off)", "fid_every")
        fid_k = _number(f2, "FID samples K", "fid_samples")
        device = f3.selectbox("Device", ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else []), key="device")
        name = f4.text_input("Run name (optional)", key="run_name")
        gpus = 0 if public.enabled() else torch.cuda.device_count()
        # more than one GPU: train with one process per GPU (torchrun + DDP); the batch size stays the global batch
        processes = f3.number_input("GPUs", 1, gpus, gpus, key="gpus") if gpus > 1 else 1
        log_to = _trackers()
        launched = st.form_submit_button("Launch run", type="primary")
    if preset != CUSTOM:
        new_run.caption(
            f"The preset as it comes trains `python -m genlab train --preset {preset}`. Evaluations, sample "
            "grids and checkpoints come about 20 to 50 times per run, whatever its length."
        )

    if not launched:
        return
    if dataset == FOLDER and not folder.strip():
        st.error("Give the folder or .zip of images to train on (the field under Dataset), or pick a data set.")
        return
    base = recipe(preset).config() if preset != CUSTOM else TrainConfig(model=model)
    changed = {k: v for k, v in opts.items() if v != model_options(model)[k].default}
    try:
        cfg = dataclasses.replace(
            base,
            dataset=f"folder:{folder.strip()}" if dataset == FOLDER else dataset,
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
            epochs=int(amount) if length == "epochs" else None,
            max_steps=int(amount) if length == "steps" else None,
            log=",".join(log_to),
        )
        run = jobs.launch(
            cfg,
            root,
            name=name or None,
            max_concurrent=int(max_runs),
            processes=int(processes),
            preset=_kept_preset(preset, cfg),
            owner=session_owner(),
        )
        st.session_state["train_run"] = run.path.name
        st.toast(f"Launched {run.path.name}")
    # a bad setting, an unavailable data set, a name taken, an unwritable folder, a public-mode refusal
    except (GenlabError, OSError) as e:  # what the user asked for cannot run; the disk refused the run folder
        st.error(f"Could not launch: {e}")
