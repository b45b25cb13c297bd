"""The served app's capacity (``make bench-load``): N simulated visitors (bench/protocol_client.py, Streamlit's
websocket protocol, no browser) move a slider on a page of ``streamlit run app.py`` on 127.0.0.1, each with
a think time of 1 to 3 s. For each N: p50 and p95 from the change to the new image fetched, errors, changes
served per second, the server's CPU per change and its RSS. It stops by itself after ``--seconds`` per N.

    python bench/bench_capacity.py --sessions 1,5,10,20,40 --seconds 40 [--no-post-script-gc]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from appserver import free_port, pin_apart, start_app, stop_app, wait_healthy  # noqa: E402
from protocol_client import crowd, run_page  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def quantile(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q * 100) - 1] if len(xs) > 1 else xs[0]


async def warm(port: int, page: str) -> None:
    async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None) as ws:
        await run_page(ws, page)


def measure(
    port: int, pid: int, page: str, label: str, values: list[float], n: int, seconds: float, think: tuple, walk: bool
) -> dict:
    cpu0, mine0, t0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
    res = asyncio.run(crowd("127.0.0.1", port, page, label, values, n, seconds, think_s=think, walk=walk))
    cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
    client = (time.process_time() - mine0) / wall  # the load generator's own share of a core
    lat = res.latencies
    return {
        "sessions": n,
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p95_ms": 1000 * quantile(lat, 0.95) if lat else float("nan"),
        "message_p50_ms": 1000 * statistics.median(res.deltas) if res.deltas else float("nan"),
        "errors": len(res.errors),
        "first_error": res.errors[0] if res.errors else "",
        "changes_per_s": len(lat) / wall,
        "cpu_ms_per_change": 1000 * cpu / max(1, len(lat)),
        "server_cpu": cpu / wall,
        "rss_mib": rss_mib(pid),
        "client_cpu": client,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="1,5,10,20,40")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--page", default="sample")
    ap.add_argument("--slider", default="Temperature")
    ap.add_argument("--values", default="0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2")
    ap.add_argument("--no-post-script-gc", action="store_true", help="start streamlit with --runner.postScriptGC false")
    ap.add_argument("--walk", action="store_true", help="step along --values in order (as the browser bench does)")
    ap.add_argument("--think", default="1,3", help="seconds a visitor waits between changes: MIN,MAX")
    ap.add_argument("--checkpoints", default=None, help="GENLAB_CHECKPOINTS for the server (default: the shipped)")
    ap.add_argument(
        "--rounds", type=int, default=1, help="a soak: each row this many times, new sessions each round (RSS curve)"
    )
    ap.add_argument("--pin", action="store_true", help="the server on one CPU, this load generator on the others")
    args = ap.parse_args()
    env = {**os.environ, "GENLAB_OFFLINE": "1", "GENLAB_RUNS": str(Path("/tmp") / f"genlab-capacity-{os.getpid()}")}
    if args.checkpoints:
        env["GENLAB_CHECKPOINTS"] = str(Path(args.checkpoints).resolve())
    flags = ("--runner.postScriptGC", "false") if args.no_post_script_gc else ()
    port = free_port()
    proc = start_app(env, port, Path("/tmp") / f"genlab-capacity-{os.getpid()}.log", flags=flags)
    pinned = pin_apart(proc.pid) if args.pin else "not pinned"
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}")
        asyncio.run(warm(port, args.page))
        values = [float(v) for v in args.values.split(",")]
        think = tuple(float(t) for t in args.think.split(","))
        gc = "off (flag)" if args.no_post_script_gc else "as .streamlit/config.toml says"
        print(
            f"# {args.page} page, slider {args.slider!r}, think {args.think} s, {args.seconds:g} s per row; "
            f"postScriptGC {gc}; {pinned}; {platform.node()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}"
        )
        print(
            "| sessions | p50 | p95 | errors | changes/s | server CPU per change | server CPU | server RSS "
            "| client CPU | p50 to the image's message |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for n in [n for n in map(int, args.sessions.split(",")) for _ in range(args.rounds)]:
            r = measure(port, proc.pid, args.page, args.slider, values, n, args.seconds, think, args.walk)
            print(
                f"| {n} | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms | {r['errors']} | {r['changes_per_s']:.2f} | "
                f"{r['cpu_ms_per_change']:.0f} ms | {100 * r['server_cpu']:.0f}% | {r['rss_mib']:.0f} MiB | "
                f"{100 * r['client_cpu']:.1f}% | {r['message_p50_ms']:.0f} ms |",
                flush=True,
            )
            if r["first_error"]:
                print(f"  first error: {r['first_error']}", flush=True)
    finally:
        stop_app(proc)


if __name__ == "__main__":
    main()
