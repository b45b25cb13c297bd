"""Train: launch runs as background processes, watch them live, stop and resume them."""

import streamlit as st

from app_pages.common import checkpoint_zip
from app_pages.launch import launch_form
from genlab import public
from genlab.catalog import runs_dir
from genlab.display import duration, run_row
from genlab.plots import fid_figure, loss_figure, lr_figure
from genlab.runs import jobs
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

launch_form(root, int(max_runs))


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
        for fig, key in ((fid_figure(rows), "fid_chart"), (lr_figure(rows), "lr_chart")):
            if fig is not None:
                st.plotly_chart(fig, key=key)
    with c2:
        grid = run.latest_samples()
        if grid is not None:
            st.image(str(grid), caption=f"samples at {grid.stem}", output_format="PNG")
    log = run.log_path
    if s.status in (RunStatus.FAILED, RunStatus.INTERRUPTED) and log.is_file():
        with st.expander("Process log (last lines)"):
            st.code("\n".join(log.read_text(errors="replace").splitlines()[-30:]))


live()
