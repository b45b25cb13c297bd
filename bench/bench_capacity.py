"""The served app's capacity (``make bench-load``): N simulated visitors (bench/protocol_client.py, Streamlit's
websocket protocol, no browser) use a page of ``streamlit run app.py`` on 127.0.0.1, each with a think time
of 1 to 3 s: on Sample they move the temperature slider (time from the change to the new grid fetched), on
Home they open the page in a new tab again and again (time until every grid has arrived). For each page and
N: p50 and p95, errors, changes served per second, the server's CPU per change and its RSS; with
``--train``, also beside a training run launched as the app launches one, and the run's images/s alone and
under each load. Each page gets a fresh server, whose first render after its health check is the cold start.
It stops by itself after ``--seconds`` per row.

    python bench/bench_capacity.py --scenarios sample-vae64,sample-flow32,home --sessions 1,5,10,20,40 \\
        --train both --json capacity.json --figure docs/img/capacity.png
    python bench/bench_capacity.py --scenarios sample-flow32 --sessions 20 --rounds 20   # a 10-minute soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from appserver import free_port, pin_apart, start_app, stop_app, wait_healthy  # noqa: E402
from protocol_client import crowd, run_page, visit  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from genlab.recipes import fastest  # noqa: E402
from genlab.runs import jobs  # noqa: E402
from genlab.runs.rundir import RunDir  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
TEMPERATURES = "0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2"


@dataclass(frozen=True)
class Scenario:
    title: str
    page: str  # "" is the default page, Home
    slider: str | None  # None: each change is a new visit to the page
    models: tuple[str, ...]  # the shipped checkpoints the server lists (the first is the page's default)


SCENARIOS = {
    "sample-vae64": Scenario("Sample, VAE 64×64", "sample", "Temperature", ("vae-emoji-64",)),
    "sample-flow32": Scenario("Sample, RealNVP 32×32", "sample", "Temperature", ("realnvp-emoji-32",)),
    "home": Scenario("Home (five grids)", "", None, ()),  # () = every shipped checkpoint
}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def quantile(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q * 100) - 1] if len(xs) > 1 else xs[0]


def images_per_s(run: RunDir | None, t0: float, t1: float) -> float | None:
    """Median images/s of the run's training rows logged between wall times t0 and t1."""
    if run is None:
        return None
    rows = [r.images_per_s for r in run.read_metrics() if r.kind == "train" and t0 <= r.timestamp <= t1]
    return statistics.median(rows) if rows else float("nan")


class Memory:
    """The server's RSS every ``every`` seconds, in a thread, for the soak's curve."""

    def __init__(self, pid: int, every: float = 2.0):
        self.pid, self.every, self.t0, self.points = pid, every, time.time(), []
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop.wait(self.every):
            try:
                self.points.append((round(time.time() - self.t0, 1), round(rss_mib(self.pid), 1)))
            except OSError:
                return

    def stop(self):
        self._stop.set()


def measure(port: int, pid: int, s: Scenario, n: int, args, run: RunDir | None, seed: int = 0) -> dict:
    values = [float(v) for v in args.values.split(",")]
    think = tuple(float(t) for t in args.think.split(","))
    cpu0, mine0, t0, w0 = cpu_seconds(pid), time.process_time(), time.perf_counter(), time.time()
    res = asyncio.run(crowd("127.0.0.1", port, s.page, s.slider, values, n, args.seconds, think, seed, args.walk))
    cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
    lat = res.latencies
    return {
        "scenario": s.title,
        "training": run is not None,
        "sessions": n,
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p95_ms": 1000 * quantile(lat, 0.95) if lat else float("nan"),
        "message_p50_ms": 1000 * statistics.median(res.deltas) if res.deltas else float("nan"),
        "changes": len(lat),
        "errors": len(res.errors),
        "first_error": res.errors[0] if res.errors else "",
        "changes_per_s": len(lat) / wall,
        "cpu_ms_per_change": 1000 * cpu / max(1, len(lat)),
        "server_cpu": cpu / wall,
        "rss_mib": rss_mib(pid),
        "client_cpu": (time.process_time() - mine0) / wall,  # the load generator's own share of a core
        "run_images_per_s": images_per_s(run, w0, time.time()),
    }


def row_text(r: dict) -> str:
    ips = r["run_images_per_s"]
    return (
        f"| {r['scenario']} | {'yes' if r['training'] else 'no'} | {r['sessions']} | {r['p50_ms']:.0f} ms | "
        f"{r['p95_ms']:.0f} ms | {r['errors']} | {r['changes_per_s']:.2f} | {r['cpu_ms_per_change']:.0f} ms | "
        f"{100 * r['server_cpu']:.0f}% | {r['rss_mib']:.0f} MiB | {100 * r['client_cpu']:.1f}% | "
        + (f"{ips:.0f} |" if ips is not None else "– |")
    )


HEADER = (
    "| page | training run | sessions | p50 | p95 | errors | changes/s | server CPU per change | server CPU | "
    "server RSS | client CPU | run's images/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


async def cold_start(port: int, page: str) -> float:
    """Seconds from now (the health check has just answered) to the first render of ``page`` with its images."""
    return (await visit("127.0.0.1", port, page))[0]


async def warm(port: int, page: str) -> None:
    async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None) as ws:
        await run_page(ws, page)


def launch_run(runs: Path) -> RunDir:
    """The Train form's first preset, as the app launches it (its own process, at GENLAB_RUN_NICE), made
    long enough to outlast the bench, with no evaluation or FID to interrupt its speed."""
    cfg = fastest().config()
    cfg.max_steps, cfg.eval_every, cfg.fid_every, cfg.log_every = 10**6, 10**6, None, 10
    return jobs.launch(cfg, runs, name="beside-visitors", max_concurrent=1)


def stop_run(run: RunDir) -> None:
    jobs.stop(run)
    deadline = time.time() + 60
    while run.status() == "running" and time.time() < deadline:
        time.sleep(0.5)


def alone(run: RunDir, seconds: float) -> float:
    """The run's images/s with no visitors, after its first logged rows."""
    deadline = time.time() + 300
    while sum(r.kind == "train" for r in run.read_metrics()) < 2:
        if time.time() > deadline or run.status() not in ("queued", "running"):
            raise RuntimeError(f"the training run did not start: {run.status()}; see {run.log_path}")
        time.sleep(0.5)
    t0 = time.time()
    time.sleep(seconds)
    return images_per_s(run, t0, time.time())


def bench_scenario(name: str, args, sessions: list[int], out: list[dict], memory: dict) -> None:
    s = SCENARIOS[name]
    with tempfile.TemporaryDirectory(prefix="genlab-capacity-") as tmp:
        tmp = Path(tmp)
        for m in s.models or [p.name for p in (ROOT / "checkpoints").iterdir() if p.is_dir()]:
            shutil.copytree(ROOT / "checkpoints" / m, tmp / "checkpoints" / m)
        env = {**os.environ, "GENLAB_OFFLINE": "1", "GENLAB_CHECKPOINTS": str(tmp / "checkpoints")}
        env["GENLAB_RUNS"] = str(tmp / "runs")
        flags = ("--runner.postScriptGC", "false") if args.no_post_script_gc else ()
        port = free_port()
        proc = start_app(env, port, tmp / "streamlit.log", flags=flags, preload=not args.plain)
        pinned = pin_apart(proc.pid) if args.pin else "not pinned"
        run = None
        try:
            wait_healthy(proc, f"http://127.0.0.1:{port}", timeout=120, poll_s=0.02)
            first = asyncio.run(cold_start(port, s.page))
            asyncio.run(warm(port, s.page))
            how = "streamlit run app.py" if args.plain else "python serve.py"
            print(f"\n## {s.title}: first render {first:.2f} s after the health check ({how}); {pinned}", flush=True)
            print(HEADER, flush=True)
            rss = Memory(proc.pid)
            for training in {"no": [False], "yes": [True], "both": [False, True]}[args.train]:
                base = None
                if training:
                    run = launch_run(tmp / "runs")
                    base = alone(run, args.seconds)
                    print(f"| {s.title} | yes, alone | 0 | | | | | | | {rss_mib(proc.pid):.0f} MiB | | {base:.0f} |")
                for k, n in enumerate(n for n in sessions for _ in range(args.rounds)):
                    r = measure(port, proc.pid, s, n, args, run, seed=k)  # new visitors choose anew
                    r.update(cold_start_s=first, run_alone_images_per_s=base)
                    out.append(r)
                    print(row_text(r), flush=True)
                    if r["first_error"]:
                        print(f"  first error: {r['first_error']}", flush=True)
                if run is not None:
                    stop_run(run)
                    run = None
            rss.stop()
            memory[s.title] = rss.points
        finally:
            if run is not None:  # interrupted: the run is its own process, and would train on
                stop_run(run)
            stop_app(proc)


def cold_starts(name: str, args, times: int) -> list[float]:
    """The first render of the scenario's page after the health check, on ``times`` fresh servers."""
    s, out = SCENARIOS[name], []
    for _ in range(times):
        with tempfile.TemporaryDirectory(prefix="genlab-cold-") as tmp:
            env = {**os.environ, "GENLAB_OFFLINE": "1", "GENLAB_RUNS": str(Path(tmp) / "runs")}
            if s.models:
                for m in s.models:
                    shutil.copytree(ROOT / "checkpoints" / m, Path(tmp) / "checkpoints" / m)
                env["GENLAB_CHECKPOINTS"] = str(Path(tmp) / "checkpoints")
            port = free_port()
            proc = start_app(env, port, Path(tmp) / "streamlit.log", preload=not args.plain)
            try:
                wait_healthy(proc, f"http://127.0.0.1:{port}", timeout=120, poll_s=0.02)
                out.append(asyncio.run(cold_start(port, s.page)))
            finally:
                stop_app(proc)
    return out


def figure(rows: list[dict], path: Path) -> None:
    """p95 and the server's CPU per change against sessions, one line per page and training, as a PNG."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("p95 per change (ms)", "server CPU per change (ms)"))
    keys = dict.fromkeys((r["scenario"], r["training"]) for r in rows)
    for i, (title, training) in enumerate(keys):
        pts = [r for r in rows if (r["scenario"], r["training"]) == (title, training)]
        name = title + (", training beside" if training else "")
        style = {"dash": "dash" if training else "solid"}
        for col, key in ((1, "p95_ms"), (2, "cpu_ms_per_change")):
            fig.add_trace(
                go.Scatter(
                    x=[r["sessions"] for r in pts],
                    y=[r[key] for r in pts],
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    mode="lines+markers",
                    line={**style, "color": f"hsl({i * 360 // max(1, len(keys))}, 60%, 45%)"},
                ),
                row=1,
                col=col,
            )
    fig.add_hline(y=500, line_dash="dot", line_color="gray", annotation_text="500 ms", row=1, col=1)
    fig.update_xaxes(title_text="simulated visitors (think time 1–3 s)", type="log", tickvals=[1, 5, 10, 20, 40])
    fig.update_yaxes(tickvals=[10, 20, 50, 100, 200, 500, 1000, 2000, 5000], row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", tickvals=[10, 20, 50, 100, 200, 500, 1000], row=1, col=2)
    fig.update_layout(
        title=f"genlab's served app: {platform.node()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}",
        width=1100,
        height=450,
        template="plotly_white",
    )
    fig.write_image(path)


def rss_figure(memory: dict, rounds: int, seconds: float, path: Path) -> None:
    """The server's RSS over the soak, one line per page."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for title, points in memory.items():
        fig.add_trace(go.Scatter(x=[t / 60 for t, _ in points], y=[m for _, m in points], name=title, mode="lines"))
    fig.update_layout(
        title=f"Server RSS while sessions join and leave ({rounds} rounds of {seconds:g} s, new sessions each): "
        f"{platform.node()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}",
        xaxis_title="minutes",
        yaxis_title="RSS (MiB)",
        yaxis_rangemode="tozero",
        width=1100,
        height=400,
        template="plotly_white",
    )
    fig.write_image(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="sample-vae64,sample-flow32,home", help=", ".join(SCENARIOS))
    ap.add_argument("--sessions", default="1,5,10,20,40")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--values", default=TEMPERATURES, help="the slider's values the visitors choose from")
    ap.add_argument("--walk", action="store_true", help="step along --values in order (as the browser bench does)")
    ap.add_argument("--think", default="1,3", help="seconds a visitor waits between changes: MIN,MAX")
    ap.add_argument("--train", choices=["no", "yes", "both"], default="no", help="a training run beside the rows")
    ap.add_argument("--rounds", type=int, default=1, help="each row this many times, new sessions each round (soak)")
    ap.add_argument("--no-post-script-gc", action="store_true", help="start streamlit with --runner.postScriptGC false")
    ap.add_argument("--plain", action="store_true", help="streamlit run app.py, not python serve.py (no preload)")
    ap.add_argument("--pin", action="store_true", help="the server on one CPU, this load generator on the others")
    ap.add_argument("--json", default=None, help="write the rows and the RSS curves here")
    ap.add_argument(
        "--figure", default=None, help="write the capacity figure (the RSS curve with --rounds) here: a PNG, by kaleido"
    )
    ap.add_argument("--cold-starts", type=int, default=0, help="only time the first render on this many servers")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill stops the server and the run too (finally)
    if args.cold_starts:
        for name in args.scenarios.split(","):
            times = cold_starts(name, args, args.cold_starts)
            how = "streamlit run app.py" if args.plain else "python serve.py"
            print(f"{SCENARIOS[name].title} ({how}): first render " + ", ".join(f"{t:.2f}" for t in times) + " s")
        return
    sessions = [int(n) for n in args.sessions.split(",")]
    print(
        f"# {platform.node()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}; think {args.think} s, "
        f"{args.seconds:g} s per row; postScriptGC {'off (flag)' if args.no_post_script_gc else 'as shipped'}"
    )
    rows, memory = [], {}
    for name in args.scenarios.split(","):
        bench_scenario(name, args, sessions, rows, memory)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "rss_mib": memory}, indent=1))
    if args.figure:
        figure(rows, Path(args.figure)) if args.rounds == 1 else rss_figure(
            memory, args.rounds, args.seconds, args.figure
        )


if __name__ == "__main__":
    main()
