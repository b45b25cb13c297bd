"""Plotly figures for the app and notebooks: a run's metric rows (``genlab.runs.records``), the likelihood lab's
histograms (``genlab.metrics.ood``) and quality-against-temperature curves (``genlab.metrics.sweep``)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .metrics.ood import SCORES, OODReport
from .metrics.sweep import SweepPoint
from .runs.records import EvalRow, FidRow, MetricRow, TrainRow, last_of

# the model's loss terms, each drawn on its own small axis under the bits/dim chart (train line, test markers)
TERMS = {"recon_bpd": "reconstruction bits/dim", "kl_bpd": "KL bits/dim", "grad_norm": "gradient norm"}


def _layout(fig: go.Figure, title: str, y: str) -> go.Figure:
    # the legend sits under the plot, where it cannot run into the title
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)),
        xaxis_title="step",
        yaxis_title=y,
        height=340,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, xanchor="left"),
    )
    return fig


def series(rows: list[MetricRow], kind: type[MetricRow], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` in rows of ``kind``, skipping rows without a finite value."""
    xs, ys = [], []
    for r in rows:
        v = r.value(key) if isinstance(r, kind) else None
        if v is not None:
            xs.append(r.step)
            ys.append(v)
    return xs, ys


def loss_figure(rows: list[MetricRow], name: str = "") -> go.Figure:
    """Train and test bits/dim on one axis: the curve to watch (lower is better; a test curve that turns
    up while the train curve goes down is over-fitting)."""
    fig = go.Figure()
    prefix = f"{name}: " if name else ""
    for kind, key, label, mode in ((TrainRow, "bpd", "train", "lines"), (EvalRow, "test_bpd", "test", "lines+markers")):
        xs, ys = series(rows, kind, key)
        if xs:
            mode = mode if len(xs) > 2 else "lines+markers"  # a line of one point draws nothing
            fig.add_trace(go.Scatter(x=xs, y=ys, mode=mode, name=f"{prefix}{label} bits/dim"))
    return _layout(fig, "bits/dim (lower is better)", "bits/dim")


def terms_figure(rows: list[MetricRow]) -> go.Figure | None:
    """The loss terms the model logs, as small multiples side by side, each on its own y-axis (a KL of
    0.03 bits/dim and a reconstruction of 5 share no scale); None when it logs none."""
    present = [k for k in TERMS if series(rows, TrainRow, k)[0]]
    if not present:
        return None
    fig = make_subplots(rows=1, cols=len(present), subplot_titles=[TERMS[k] for k in present])
    for col, key in enumerate(present, start=1):
        for kind, k, label, mode in ((TrainRow, key, "train", "lines"), (EvalRow, f"test_{key}", "test", "markers")):
            xs, ys = series(rows, kind, k)
            if xs:
                color = "#636efa" if label == "train" else "#ef553b"
                trace = go.Scatter(x=xs, y=ys, mode=mode, name=label, line=dict(color=color), showlegend=col == 1)
                fig.add_trace(trace, row=1, col=col)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        height=220,
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left"),
    )
    return fig


def lr_figure(rows: list[MetricRow]) -> go.Figure | None:
    """The learning rate each logged step trained at; None when it never changed (a constant rate is
    already in the run's settings, and a flat line says nothing)."""
    pairs = [(x, y) for x, y in zip(*series(rows, TrainRow, "lr")) if y > 0]  # 0: a row from before lr was logged
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(set(ys)) < 2:
        return None
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", name="learning rate"))
    fig = _layout(fig, "learning rate (the schedule, warm-up and decay as trained)", "learning rate")
    return fig.update_layout(height=220, yaxis=dict(exponentformat="e"))


def fid_figure(rows: list[MetricRow], name: str = "") -> go.Figure | None:
    """FID@K against step, titled with K and the Inception weights' source; None without FID rows."""
    last = last_of(rows, FidRow)
    if last is None:
        return None
    k = last.fid_samples
    xs, ys = series(rows, FidRow, "fid")
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name=(f"{name}: " if name else "") + f"FID@{k}"))
    return _layout(
        fig,
        f"FID@{k} vs {last.fid_ref_images} training images · weights: {last.fid_weights or 'unknown weights'}",
        f"FID@{k}",
    )


def compare_figure(runs: dict[str, list[MetricRow]]) -> go.Figure:
    """Train and test bits/dim of several runs on one figure."""
    fig = go.Figure()
    for name, rows in runs.items():
        for kind, key, dash in ((TrainRow, "bpd", None), (EvalRow, "test_bpd", "dot")):
            xs, ys = series(rows, kind, key)
            if xs:
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines",
                        line=dict(dash=dash),
                        name=f"{name} {'train' if kind is TrainRow else 'test'} bits/dim",
                    )
                )
    return _layout(
        fig, "training curves (bits/dim of each model's loss: −ELBO for a VAE, exact for a flow)", "bits/dim"
    )


def ood_histogram(report: OODReport, score: str, marker: tuple[str, float] | None = None) -> go.Figure:
    """Overlaid histograms of one per-image score (``genlab.metrics.ood.SCORES``) for every scored set, as
    probability densities so sets of different sizes compare; ``marker`` (label, value) draws one image's place."""
    fig = go.Figure()
    for name, s in report.sets.items():
        label = f"{name} (training data's test set)" if name == report.in_dataset else name
        fig.add_trace(
            go.Histogram(x=SCORES[score](s), name=label, opacity=0.6, histnorm="probability density", nbinsx=60)
        )
    if marker:
        fig.add_vline(x=marker[1], line_dash="dash", line_color="black", annotation_text=marker[0])
    fig.update_layout(barmode="overlay")
    _layout(fig, f"{score} per image ({report.bpd_kind})", "density")
    fig.update_xaxes(title_text=score)
    return fig


def sweep_figure(curves: dict[str, list[SweepPoint]]) -> go.Figure:
    """FID, KID, precision and recall against temperature, one colour per model, one panel per figure."""
    fig = make_subplots(
        rows=2, cols=2, subplot_titles=("FID ↓", "KID ↓ (± std over subsets)", "precision ↑", "recall ↑")
    )
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    for i, (name, points) in enumerate(curves.items()):
        t = [p.temperature for p in points]
        colour = palette[i % len(palette)]
        panels = (
            (1, 1, [p.fid for p in points], None),
            (1, 2, [p.kid for p in points], [p.kid_std for p in points]),
            (2, 1, [p.precision for p in points], None),
            (2, 2, [p.recall for p in points], None),
        )
        for row, col, ys, err in panels:
            fig.add_trace(
                go.Scatter(
                    x=t,
                    y=ys,
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=(row, col) == (1, 1),
                    line=dict(color=colour),
                    error_y=dict(array=err, visible=True) if err else None,
                ),
                row=row,
                col=col,
            )
    fig.update_xaxes(title_text="temperature")
    fig.update_layout(
        height=560, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.12, x=0, xanchor="left")
    )
    return fig
