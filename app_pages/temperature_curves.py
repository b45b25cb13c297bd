"""Compare's "Quality against temperature" section: FID, KID and precision/recall of both models' samples at
each temperature (genlab.metrics.sweep), from the points their folders carry or this machine computed."""

import streamlit as st

from app_pages.common import DEVICE
from genlab import GenlabError, names, public
from genlab.metrics.sweep import SWEEP_REF, SWEEP_SAMPLES, cached_sweep, parse_temperatures, sweep
from genlab.models import resolve_model_dir
from genlab.plots import sweep_figure

TEMPERATURES = "0.5:1.0:0.1"


def temperature_curves(entries: dict, models: dict) -> None:
    st.subheader("Quality against temperature")
    st.caption(
        "Cooler samples trade variety for fidelity: **precision** (the share of samples that fall among real "
        "images' Inception features) should rise as T falls and **recall** (the share of real images the samples "
        "cover) fall; FID and KID find where the two balance (Kynkäänniemi et al., arXiv 1904.06991; Bińkowski et "
        f"al., arXiv 1801.01401). FID@{SWEEP_SAMPLES} and the rest against {SWEEP_REF} training images, as on "
        "the cards; the command line computes the same points: "
        f"`genlab sweep MODEL --temperatures {TEMPERATURES}`."
    )
    known = {name: e for name, e in entries.items() if e.dataset}
    curves = {
        f"{name}: {e.path.name}": cached_sweep(models[name], e.dataset, shipped=_folder(e)) for name, e in known.items()
    }
    drawn = {k: v for k, v in curves.items() if v}
    if drawn:
        st.plotly_chart(sweep_figure(drawn), key="cmp_sweep")
        weights = {p.weights for points in drawn.values() for p in points}
        st.caption("Inception weights: " + "; ".join(sorted(weights)))
    wanted = parse_temperatures(TEMPERATURES)
    todo = {n: e for n, e in known.items() if set(wanted) - {p.temperature for p in curves[f"{n}: {e.path.name}"]}}
    if not todo:
        return
    if public.enabled():
        st.caption("This public app shows the curves its models carry; it does not compute new ones.")
        return
    minutes = 1.5 * len(wanted) * len(todo) if DEVICE == "cpu" else 0.2 * len(wanted) * len(todo)
    if st.button(f"Compute the missing curves here (about {minutes:.0f} min on this {DEVICE})", key="cmp_sweep_go"):
        bar = st.progress(0.0, "Sampling and extracting Inception features…")
        done = [0]

        def tick(point, cached):
            done[0] += 1
            bar.progress(done[0] / (len(wanted) * len(todo)), f"T={point.temperature:g}: FID {point.fid:.1f}")

        try:
            for name, e in todo.items():
                sweep(models[name], e.dataset, wanted, device=DEVICE, on_point=tick, shipped=_folder(e))
        except GenlabError as err:
            st.error(str(err))
            return
        st.rerun()


def _folder(entry):
    return resolve_model_dir(entry.path) / names.SWEEP
