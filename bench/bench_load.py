"""Load test (``make bench-load-browser``): N concurrent browser sessions move the temperature slider on the
Sample page of ``streamlit run app.py`` (127.0.0.1 only) while one training run is live.

Reports errors, p50/p95 latency from a slider key press to the new sample grid shown (its ``load`` event,
both in the page's own clock, so the harness's round trips to Chromium are not counted), the
server's memory over time, and the training run's images/s without and with the load. It stops by
itself after ``--seconds``; everything it starts is on loopback and is stopped at the end.

    python bench/bench_load.py --sessions 20 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from appserver import CHROMIUM, CHROMIUM_ARGS, free_port, pin_apart, start_app, stop_app, wait_healthy  # noqa: E402
from protocol_client import crowd  # noqa: E402

from genlab.runs.rundir import RunDir  # noqa: E402

IMG = '[data-testid="stMain"] [data-testid="stImage"] img'


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _speed(run: RunDir, t0: float, t1: float) -> float:
    """Median images/s of the training rows logged between wall times t0 and t1."""
    rows = [r.images_per_s for r in run.read_metrics() if r.kind == "train" and t0 <= r.timestamp <= t1]
    return statistics.median(rows) if rows else float("nan")


# Timed in the page's own clock, so the harness's round trips to Chromium are not counted: the key press as
# the page sees it (key), the rerun message leaving (sent), the first message back that holds a media URL,
# the grid's (delta), and the `load` event of the grid's new image (shown: its file fetched and decoded).
# sent -> delta is the server's share, what bench/protocol_client.py times without a browser.
CLOCK = """
const fresh = () => ({key: performance.now(), sent: null, delta: null, shown: null});
window.__genlab = {key: null};
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  const t = window.__genlab;
  if (t.key !== null && t.sent === null) {
    t.sent = performance.now();
    this.addEventListener('message', (m) => {
      if (t.delta === null && new TextDecoder().decode(m.data).includes('/media/')) t.delta = performance.now();
    });
  }
  return send.call(this, data);
};
document.addEventListener('keydown', () => { window.__genlab = fresh(); }, true);
new MutationObserver((changes) => {
  const grid = document.querySelector(GRID);
  for (const c of changes) if (c.target === grid && window.__genlab.key !== null) {
    const t = window.__genlab;
    grid.addEventListener('load', () => { if (t.shown === null) t.shown = performance.now(); }, {once: true});
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['src']});
""".replace("GRID", json.dumps(IMG))


async def session(browser, url: str, clock: dict, ready: list, marks: list, errors: list, rng: random.Random):
    page = await browser.new_page()
    try:
        await page.add_init_script(CLOCK)
        await page.goto(url + "/sample", timeout=300_000)
        await page.locator(IMG).first.wait_for(timeout=300_000)
        slider = page.get_by_role("slider").first
        direction = "ArrowRight"
        ready.append(1)
        await clock["go"].wait()  # the timed window starts when every session has its page
        while time.time() < clock["until"]:
            await slider.focus()
            await slider.press(direction)
            try:
                t = await page.wait_for_function(
                    "() => window.__genlab.shown !== null && window.__genlab",
                    polling=50,  # not every animation frame: 20 pages polling at 60 Hz would load the CPU themselves
                    timeout=30_000,
                )
                marks.append(await t.json_value())
            except Exception as e:  # noqa: BLE001 - every failure is counted, whatever it is
                errors.append(f"{type(e).__name__}: {str(e)[:120]}")
            value = float(await slider.input_value())  # an <input type="range"> in Streamlit 1.67
            direction = "ArrowLeft" if value >= 1.4 else "ArrowRight" if value <= 0.1 else direction
            await asyncio.sleep(rng.uniform(0.2, 1.0))  # a person looks at the grid before the next move
    except Exception as e:  # noqa: BLE001
        errors.append(f"session: {type(e).__name__}: {str(e)[:120]}")
    finally:
        await page.close()


def spans(marks: list[dict], start: str, end: str) -> list[float]:
    """Milliseconds from mark ``start`` to mark ``end`` of each change that has both, sorted."""
    return sorted(m[end] - m[start] for m in marks if m.get(start) is not None and m.get(end) is not None)


def pct(xs: list[float], f: float) -> float:
    return xs[min(len(xs) - 1, int(f * len(xs)))] if xs else float("nan")


async def drive(url: str, sessions: int, seconds: float, marks: list, errors: list):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
        )
        clock, ready = {"go": asyncio.Event(), "until": 0.0}, []

        async def start():
            while len(ready) + sum(e.startswith("session") for e in errors) < sessions:
                await asyncio.sleep(0.1)
            clock["until"] = time.time() + seconds
            clock["go"].set()

        await asyncio.gather(
            start(),
            *(session(browser, url, clock, ready, marks, errors, random.Random(i)) for i in range(sessions)),
        )
        await browser.close()
        return clock["until"] - seconds  # when the timed window began


async def with_crowd(url: str, a, marks: list, errors: list):
    """The browser sessions, and beside them ``a.crowd`` protocol-client sessions over the same window (from
    the browsers' start, plus their time to open their pages)."""
    port = int(url.rsplit(":", 1)[1])
    values = [round(0.05 * i, 2) for i in range(2, 29)]  # the arrow keys' walk: 0.10 to 1.40 in steps of 0.05
    jobs = [drive(url, a.sessions, a.seconds, marks, errors)]
    if a.crowd:
        seconds = a.seconds + 15  # the browsers' window, and their time to open their pages
        jobs.append(crowd("127.0.0.1", port, "sample", "Temperature", values, a.crowd, seconds, (0.2, 1.0), walk=True))
    done = await asyncio.gather(*jobs)
    return done[0], (done[1] if a.crowd else None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--baseline-seconds", type=float, default=30, help="training alone, before the load")
    ap.add_argument("--model", default=str(ROOT / "checkpoints" / "vae-emoji-64"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-train", action="store_true", help="no training run beside the sessions")
    ap.add_argument("--pin", action="store_true", help="the server on one CPU, Chromium and this bench on the others")
    ap.add_argument(
        "--crowd",
        type=int,
        default=0,
        help="this many more sessions from bench/protocol_client.py, walking the same slider: the browser "
        "sessions are then probes in a crowd that costs the machine little",
    )
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="genlab-load-") as tmp:
        tmp = Path(tmp)
        shutil.copytree(a.model, tmp / "checkpoints" / Path(a.model).name)  # the only model: the page's default
        env = {
            **os.environ,
            "GENLAB_CHECKPOINTS": str(tmp / "checkpoints"),
            "GENLAB_RUNS": str(tmp / "runs"),
            "GENLAB_HOME": os.environ.get("GENLAB_HOME", str(Path.home() / ".cache" / "genlab")),
        }
        run = RunDir(tmp / "runs" / "live")
        train_argv = (
            []
            if a.no_train
            else [
                sys.executable,
                "-m",
                "genlab",
                "train",
                "vae",
                "--dataset",
                "emoji-faces",
                "--image-size",
                "32",
                "--batch-size",
                "32",
                "--latent-dim",
                "16",
                "--max-steps",
                "1000000",
                "--log-every",
                "5",
                "--eval-every",
                "1000000",
                "--eval-batches",
                "1",
                "--out",
                str(run.path),
            ]
        )
        train = subprocess.Popen(
            train_argv or [sys.executable, "-c", "pass"],
            cwd=ROOT,
            env={**env, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = free_port()
        server = start_app(env, port)
        pinned = pin_apart(server.pid) if a.pin else "not pinned"
        url = f"http://127.0.0.1:{port}"
        memory, stop = [], threading.Event()
        try:
            wait_healthy(server, url, timeout=120)
            while train_argv and not any(r.kind == "train" for r in run.read_metrics()):
                time.sleep(0.2)
            t0 = time.time()
            time.sleep(a.baseline_seconds if train_argv else 0)
            t1 = time.time()

            def sample_memory():
                while not stop.wait(1.0):
                    memory.append((round(time.time() - t1, 1), round(_rss_mib(server.pid), 1)))

            threading.Thread(target=sample_memory, daemon=True).start()
            marks, errors = [], []
            t_load, crowd_result = asyncio.run(with_crowd(url, a, marks, errors))
            t2 = time.time()
            stop.set()
        finally:
            if train_argv:
                run.stop_file.touch()
            stop_app(server)
            train.wait(60)
        lat, server, page = spans(marks, "key", "shown"), spans(marks, "sent", "delta"), spans(marks, "delta", "shown")
        result = {
            "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
            "sessions": a.sessions,
            "cpus": pinned,
            "seconds": a.seconds,
            "slider_changes": len(lat),
            "errors": len(errors),
            "p50_ms": pct(lat, 0.50),  # key press to the new grid shown
            "p95_ms": pct(lat, 0.95),
            "max_ms": pct(lat, 1.0),
            "key_to_message_p50_ms": pct(spans(marks, "key", "sent"), 0.5),
            "server_p50_p95_ms": [pct(server, 0.5), pct(server, 0.95)],  # message to the grid's delta
            "page_p50_p95_ms": [pct(page, 0.5), pct(page, 0.95)],  # the delta to the grid shown
            "server_rss_mib_first_last_max": [memory[0][1], memory[-1][1], max(m for _, m in memory)]
            if memory
            else None,
            "train_images_per_s_alone": _speed(run, t0, t1),
            "train_images_per_s_under_load": _speed(run, t_load, t2),
            "first_errors": errors[:5],
            "crowd": None
            if crowd_result is None
            else {
                "sessions": a.crowd,
                "changes": len(crowd_result.deltas),
                "errors": len(crowd_result.errors),
                "message_p50_p95_ms": [pct(sorted(1000 * d for d in crowd_result.deltas), f) for f in (0.5, 0.95)],
            },
        }
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps({**result, "memory": memory}, indent=2))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
