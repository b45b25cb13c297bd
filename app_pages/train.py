"""Train: launch runs as background processes, watch them live, stop, resume and delete them."""

import streamlit as st

from app_pages.common import checkpoint_zip, session_owner
from app_pages.launch import launch_form
from genlab import GenlabError, public
from genlab.catalog import runs_dir
from genlab.display import duration, megabytes, run_row
from genlab.plots import fid_figure, loss_figure, lr_figure, terms_figure
from genlab.runs import jobs
from genlab.runs.grids import newest_readable
from genlab.runs.records import RunStatus
from genlab.runs.rundir import RunDir
from genlab.runs.summary import RunSummary, list_runs, summarize

st.title("Train")
root = str(runs_dir())
if public.enabled():  # a hosted app: the caps are the server's, not the visitor's
    lim = public.limits()
    max_runs = lim.max_runs
    st.caption(
        f"Public app: each run is capped at {lim.max_steps} steps and {lim.max_minutes:g} minutes (evaluations and "
        f"FID included), a batch of {lim.max_batch}, {lim.max_image_size}×{lim.max_image_size} images and "
        f"{lim.max_params:,} parameters; you can stop or delete only the runs you launched."
    )
else:
    max_runs = jobs.default_max_concurrent()
st.caption(
    f"Runs are saved in `{root}` (set `GENLAB_RUNS` before starting the app to use another folder); "
    f"runs train {max_runs} at a time, and more wait in a queue."
)

launch_form(root, int(max_runs))


def _status_line(s) -> str:
    speed = f"{s.images_per_s:.0f} images/s" + ("" if s.status.active else " (mean)") if s.images_per_s else "—"
    eta = f" · ETA {duration(s.eta_s)}" if s.eta_s is not None else ""
    return f"**{s.status}** · step {s.step}/{s.total_steps or '?'} · {speed}{eta} · {megabytes(s.disk_bytes)} on disk"


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
    st.progress(max(0.0, min(1.0, s.progress or 0.0)), text=_status_line(s))
    if s.error:
        st.error(s.error + ("" if s.can_resume or not s.status.resumable else " A resume cannot fix this."))
    for w in s.warnings:
        st.warning(w)
    for tracker, where in s.logs:  # --log: where each tracker's copy is, and what opens it
        st.caption(f"{tracker}: {where if where.startswith('https://') else f'`{where}`'}")
    _controls(run, s, pick)
    _charts(run, s, rows)


def _controls(run: RunDir, s: RunSummary, pick: str) -> None:
    """Stop, Resume, Download and Delete, for whoever may act on the run."""
    b1, b2, b3, b4 = st.columns(4)
    mine = jobs.may_control(run, session_owner())  # in a public app, only the runs this session launched
    others = None if mine else "launched by another visitor"
    if b1.button("Stop run", disabled=not (s.status.active and mine), help=others, key="stop"):
        try:
            jobs.stop(run, owner=session_owner())
            st.toast(f"Stopping {pick}: it checkpoints and exits")
        except GenlabError as e:  # it ended a moment ago
            st.error(str(e))
    if b2.button("Resume run", disabled=not (s.can_resume and mine), help=others, key="resume"):
        try:
            jobs.resume(run, int(max_runs), owner=session_owner())
        except GenlabError as e:  # resumed by another tab a moment ago; a bad run.json
            st.error(str(e))
    weights = run.weights_file
    try:
        packed = checkpoint_zip(str(run.path), weights.stat().st_mtime) if weights.is_file() else None
    except (GenlabError, OSError) as e:  # a damaged checkpoint folder: said, not raised
        packed = None
        b3.caption(f"No download: {e}")
    if packed is not None:
        b3.download_button("Download checkpoint (.zip)", packed, file_name=f"{pick}.zip", key="dl")
    why = others or ("stop it first" if s.status.active else None)
    if b4.button("Delete run", disabled=why is not None, help=why, key="ask_delete"):
        st.session_state["confirm_delete"] = pick  # the confirmation names this run, and only this one
    if st.session_state.get("confirm_delete") == pick and why is None:
        _confirm_delete(run, s, pick)


def _confirm_delete(run: RunDir, s: RunSummary, pick: str) -> None:
    """The second click that deletes a run: it names the run and what it takes on disk."""
    st.warning(f"Delete **{pick}** and everything in it ({megabytes(s.disk_bytes)}) for good?")
    yes, no, _ = st.columns([1, 1, 4])
    if yes.button(f"Delete {pick}", type="primary", key="delete"):
        st.session_state.pop("confirm_delete", None)
        try:
            jobs.delete(run, owner=session_owner())
            st.session_state.pop("train_run", None)
            st.rerun()
        except (GenlabError, OSError) as e:  # resumed a moment ago; the folder could not be removed
            st.error(str(e))
    if no.button("Cancel", key="cancel_delete"):
        st.session_state.pop("confirm_delete", None)
        st.rerun()


def _charts(run: RunDir, s: RunSummary, rows: list) -> None:
    """The run's curves, its newest sample grid, its best weights, and its log when it failed."""
    c1, c2 = st.columns([3, 2])
    with c1:
        if rows:
            st.plotly_chart(loss_figure(rows), key="loss_chart")
        else:
            st.caption("No metrics yet: the first rows arrive a few steps after training starts.")
        extra = {"terms_chart": terms_figure(rows), "fid_chart": fid_figure(rows), "lr_chart": lr_figure(rows)}
        for key, fig in extra.items():
            if fig is not None:
                st.plotly_chart(fig, key=key)
    with c2:
        newest = newest_readable(run.samples)  # a grid being replaced right now falls back to the one before
        if newest is not None:
            path, png = newest
            st.image(png, caption=f"samples at step {int(path.stem.split('-')[1])} (T=1)", output_format="PNG")
        if s.best is not None:
            so_far = " so far" if s.status.active else ""
            st.caption(f"Best test bits/dim{so_far}: {s.best[1]:.3f} at step {s.best[0]} (kept as the run's best).")
    log = run.log_path
    if s.status in (RunStatus.FAILED, RunStatus.INTERRUPTED) and log.is_file():
        with st.expander("Process log (last lines)"):
            st.code("\n".join(log.read_text(errors="replace").splitlines()[-30:]))


live()
