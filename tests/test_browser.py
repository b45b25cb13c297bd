"""The app in a real browser: Debian's chromium driven by Playwright against ``streamlit run app.py``.

Skips (with the reason) only when chromium or playwright is missing; .ci/run installs both.
Set GENLAB_SCREENSHOTS=DIR to keep the screenshots (docs/img/app-*.png come from here).
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import stop_all_runs
from test_app import _shipped

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="no chromium: apt-get install -y chromium (.ci/run does)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    ck, runs = tmp / "checkpoints", tmp / "runs"
    ck.mkdir()
    _shipped(ck)
    port = _free_port()
    env = {**os.environ, "GENLAB_CHECKPOINTS": str(ck), "GENLAB_RUNS": str(runs)}
    log = tmp / "streamlit.log"   # a file, not a pipe: nobody reads a pipe, and a full one would block the server
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("streamlit did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.3)
    try:
        yield url, runs
    finally:
        stop_all_runs(runs)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    d = Path(os.environ.get("GENLAB_SCREENSHOTS", tmp_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _goto(page, url: str, title: str):
    page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]')
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    _settle(page)


def _settle(page):
    """Wait until Streamlit's script has finished (no 'running' status widget)."""
    page.wait_for_timeout(300)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(300)


def _no_exception(page):
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def _first_image_src(page) -> str:
    return page.locator('[data-testid="stImage"] img').first.get_attribute("src")


def _points(page) -> int:
    return page.evaluate("""() => { const g = document.querySelector('.js-plotly-plot');
        return g && g.data ? Math.max(0, ...g.data.map(t => (t.x || []).length)) : 0; }""")


def _move_temperature(page):
    before = _first_image_src(page)
    slider = page.get_by_role("slider").first
    slider.focus()
    for _ in range(4):
        slider.press("ArrowRight")
    page.wait_for_function(f"() => document.querySelector('[data-testid=\"stImage\"] img').src !== {before!r}",
                           timeout=60_000)
    assert _first_image_src(page) != before


def _launch_tiny_run(page, steps: int):
    if not page.get_by_label("Epochs or steps", exact=True).is_visible():
        page.get_by_text("New run").first.click()
    page.get_by_label("Epochs or steps", exact=True).wait_for()
    page.get_by_label("Image size").click()
    page.get_by_role("option", name="16", exact=True).click()
    page.get_by_text("steps", exact=True).click()
    for label, v in (("Epochs or steps", steps), ("Batch size", 16), ("latent dim", 4), ("width", 4), ("max width", 8)):
        box = page.get_by_label(label, exact=True)
        box.fill(str(v))
    page.get_by_role("button", name="Launch").click()
    _settle(page)


def test_every_page_sliders_a_live_run_and_two_sessions(server, browser, shots, request):
    url, runs = server
    a = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
    request.addfinalizer(lambda: a.screenshot(path=str(shots / "last-state.png"), full_page=True))
    for path, title in (("", "genlab"), ("train", "Train"), ("sample", "Sample"), ("compare", "Compare"),
                        ("models", "Models")):
        _goto(a, f"{url}/{path}", title)
        _no_exception(a)
        a.screenshot(path=str(shots / f"app-{path or 'home'}.png"), full_page=True)

    _goto(a, f"{url}/sample", "Sample")
    _move_temperature(a)
    _no_exception(a)

    # session A launches a run that lasts long enough to be watched
    _goto(a, f"{url}/train", "Train")
    _launch_tiny_run(a, steps=20_000)
    _no_exception(a)
    a.wait_for_function("() => { const g = document.querySelector('.js-plotly-plot');"
                        " return g && g.data && g.data.some(t => (t.x || []).length >= 2); }", timeout=120_000)
    first = _points(a)

    # session B, a second browser context (its own Streamlit session), samples while A trains
    b = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
    _goto(b, f"{url}/sample", "Sample")
    _move_temperature(b)
    _no_exception(b)
    _goto(b, f"{url}/train", "Train")               # and sees A's run live
    b.locator("strong", has_text="running").first.wait_for(timeout=60_000)
    b.wait_for_function("() => { const g = document.querySelector('.js-plotly-plot');"
                        " return g && g.data && g.data.some(t => (t.x || []).length >= 2); }", timeout=60_000)
    _no_exception(b)
    b.screenshot(path=str(shots / "app-train-second-session.png"), full_page=True)

    a.wait_for_function(f"() => {{ const g = document.querySelector('.js-plotly-plot');"
                        f" return Math.max(...g.data.map(t => (t.x || []).length)) > {first}; }}", timeout=60_000)
    a.screenshot(path=str(shots / "app-train-live.png"), full_page=True)
    a.get_by_role("button", name="Stop").click()
    a.locator("strong", has_text="stopped").first.wait_for(timeout=60_000)
    _no_exception(a)
    _no_exception(b)
    assert len(list(runs.glob('*/run.json'))) == 1          # launched once, whatever the reruns and sessions
