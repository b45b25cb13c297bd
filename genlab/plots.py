"""Plotly figures of a run's metric rows (``genlab.runs.records``), for the app and notebooks."""

from __future__ import annotations

import plotly.graph_objects as go

from .runs.records import EvalRow, FidRow, MetricRow, TrainRow, last_of

# train-row metrics worth a curve, with their legend names; anything else stays in the table
TRAIN_CURVES = {"bpd": "train bits/dim", "recon_bpd": "train recon bits/dim", "kl_bpd": "train KL bits/dim"}
EVAL_CURVES = {"test_bpd": "test bits/dim", "test_recon_bpd": "test recon bits/dim", "test_kl_bpd": "test KL bits/dim"}


def _layout(fig: go.Figure, title: str, y: str) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title="step",
        yaxis_title=y,
        height=340,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"),
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
    """Loss terms (train rows) and held-out bits/dim (eval rows) against step."""
    fig = go.Figure()
    prefix = f"{name}: " if name else ""
    for kind, curves, dash in ((TrainRow, TRAIN_CURVES, None), (EvalRow, EVAL_CURVES, "dot")):
        for key, label in curves.items():
            xs, ys = series(rows, kind, key)
            if xs:
                # the KL term is ~100× smaller than the others: its own axis keeps both readable
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines+markers" if kind is EvalRow else "lines",
                        name=prefix + label,
                        line=dict(dash=dash),
                        yaxis="y2" if "kl" in key else "y",
                    )
                )
    fig = _layout(fig, "bits/dim (lower is better)", "bits/dim")
    if any(t.yaxis == "y2" for t in fig.data):
        fig.update_layout(yaxis2=dict(title="KL bits/dim", overlaying="y", side="right", showgrid=False))
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
