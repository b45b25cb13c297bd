"""The app's responsiveness: server-side time of a Sample-page rerun after a slider change, and the
cold start of ``streamlit run app.py`` to the first rendered page in a real browser.

Models: the default-size VAE (64×64) and RealNVP (32×32) from two run directories (training
does not change the cost), copied into a temporary checkpoints folder so the app treats them
as shipped checkpoints.

    python bench/bench_app.py --vae runs/vae-emoji --flow runs/realnvp-emoji [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from appserver import CHROMIUM, CHROMIUM_ARGS, free_port, start_app, stop_app, wait_healthy  # noqa: E402


def as_shipped(run: Path, dest: Path) -> Path:
    """A run's checkpoint as a shipped model directory (weights, config, run.json)."""
    dest.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(run / "checkpoint" / name, dest / name)
    shutil.copy(run / "run.json", dest / "run.json")
    return dest


def rerun_times(model_dir: Path, repeats: int) -> dict:
    """Wall time of AppTest.run() after moving the temperature slider (the whole page reruns:
    sample grid, PNG encoding for the download, latent sliders or temperature strip, interpolation)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/sample.py").run()
    at.selectbox(key="sample_model").set_value(str(model_dir)).run()
    at.select_slider(key="n").set_value(16).run()
    assert not at.exception, at.exception
    times = []
    for i in range(repeats + 2):
        at.slider(key="temperature").set_value(round(0.5 + 0.05 * (i % 15), 2))
        t = time.perf_counter()
        at.run()
        dt = time.perf_counter() - t
        assert not at.exception, at.exception
        if i >= 2:  # the first reruns warm the caches (test images, KL ranking)
            times.append(dt)
    return {
        "median_ms": 1000 * statistics.median(times),
        "p90_ms": 1000 * sorted(times)[int(0.9 * (len(times) - 1))],
        "min_ms": 1000 * min(times),
        "n": len(times),
    }


def sample_only_ms(model_dir: Path, repeats: int) -> float:
    """Just the 16 samples, grid and PNG encoding (what a slider change must redo)."""
    from genlab import load_model
    from genlab.explore import grid, png_bytes, sample

    m = load_model(model_dir).eval()
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        png_bytes(grid(sample(m, 16, 0.7, i), scale=max(1, 96 // m.config.image_size)))
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def cold_start(env: dict, repeats: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
        )
        for _ in range(repeats):
            port = free_port()
            t0 = time.perf_counter()
            proc = start_app(env, port)
            url = f"http://127.0.0.1:{port}"
            wait_healthy(proc, url, timeout=120, poll_s=0.05)
            t_health = time.perf_counter() - t0
            page = browser.new_page()
            page.goto(url)
            page.get_by_role("heading", name="genlab").wait_for(timeout=120_000)
            t_heading = time.perf_counter() - t0
            page.locator('[data-testid="stImage"] img').nth(1).wait_for(timeout=120_000)  # both sample grids
            t_images = time.perf_counter() - t0
            out.append({"health_s": t_health, "first_page_s": t_heading, "home_with_samples_s": t_images})
            page.close()
            stop_app(proc)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", default="runs/vae-emoji")
    ap.add_argument("--flow", default="runs/realnvp-emoji")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--cold-repeats", type=int, default=3)
    args = ap.parse_args()
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="genlab-bench-app-"))
    ck = tmp / "checkpoints"
    vae, flow = as_shipped(Path(args.vae), ck / "vae"), as_shipped(Path(args.flow), ck / "flow")
    os.environ.update(GENLAB_CHECKPOINTS=str(ck), GENLAB_RUNS=str(tmp / "runs"), GENLAB_OFFLINE="1")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    for name, d in (("VAE 64×64", vae), ("RealNVP 32×32", flow)):
        r = rerun_times(d, args.repeats)
        print(
            f"{name}: Sample-page rerun after a temperature change, 16 samples: median {r['median_ms']:.0f} ms, "
            f"p90 {r['p90_ms']:.0f} ms, min {r['min_ms']:.0f} ms over {r['n']} reruns; "
            f"of which sampling+grid+PNG alone: {sample_only_ms(d, args.repeats):.0f} ms"
        )
    cs = cold_start(dict(os.environ), args.cold_repeats)
    for i, c in enumerate(cs):
        print(
            f"cold start {i + 1}: server healthy {c['health_s']:.1f} s, first page rendered {c['first_page_s']:.1f} s, "
            f"home page with both sample grids {c['home_with_samples_s']:.1f} s"
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
