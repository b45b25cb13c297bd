"""A screenshot of TensorBoard showing genlab runs (docs/img/tensorboard-*.png): TensorBoard serves LOGDIR on
127.0.0.1, Debian's chromium opens its Time Series dashboard, filtered to bits/dim and the sample grids.

    python -m genlab train --preset vae-mnist-32 --max-steps 600 --log tensorboard --out /tmp/tb-demo/vae-mnist-600
    python -m genlab export-logs checkpoints/vae-mnist-32 --to tensorboard /tmp/tb-demo/logs
    python bench/tensorboard_shot.py /tmp/tb-demo/logs --out docs/img/tensorboard-bpd.png --filter bpd
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from appserver import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402


def serve(logdir: str, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("tensorboard")
    cmd = [str(exe), "--logdir", logdir, "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_runs(port: int, timeout: float = 120) -> list:
    """TensorBoard's run list, once it has read at least one run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as r:
                runs = json.loads(r.read())
            if runs:
                return runs
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"TensorBoard on port {port} showed no run within {timeout:g} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("logdir")
    p.add_argument("--out", required=True)
    p.add_argument("--filter", default="bpd|samples", help="the Time Series dashboard's tag filter (a regex)")
    p.add_argument("--height", type=int, default=1100)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    tb = serve(args.logdir, port)
    try:
        print("runs:", wait_for_runs(port))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": args.height})
            page.goto(f"http://127.0.0.1:{port}/?tagFilter={args.filter}#timeseries")
            page.wait_for_selector("canvas, img", timeout=60_000)
            settings = page.get_by_role("button", name="Close")  # the Settings pane opens on a first visit
            if settings.count():
                settings.first.click()
            page.wait_for_timeout(4000)  # the charts draw after their data arrives: no event says when
            page.screenshot(path=args.out)
            browser.close()
        print("wrote", args.out)
    finally:
        tb.terminate()
        tb.wait(timeout=30)


if __name__ == "__main__":
    main()
