"""The app in a real browser: Debian's chromium driven by Playwright against ``streamlit run app.py``.

Skips (with the reason) only when chromium or playwright is missing; .ci/run installs both.
Set GENLAB_SCREENSHOTS=DIR to keep the screenshots (docs/img/app-*.png come from here).
"""

import os
import re
from pathlib import Path

import pytest
from appserver import CHROMIUM, CHROMIUM_ARGS, free_port, start_app, stop_app, wait_healthy
from test_app import _shipped

from conftest import stop_all_runs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="no chromium: apt-get install -y chromium (.ci/run does)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    ck, runs = tmp / "checkpoints", tmp / "runs"
    ck.mkdir()
    _shipped(ck)
    port = free_port()
    env = {**os.environ, "GENLAB_CHECKPOINTS": str(ck), "GENLAB_RUNS": str(runs)}
    log = tmp / "streamlit.log"
    proc = start_app(env, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, timeout=90)
    except RuntimeError as e:
        stop_app(proc)
        pytest.fail(f"{e}:\n" + log.read_text(errors="replace")[-3000:])
    try:
        yield url, runs
    finally:
        stop_all_runs(runs)
        stop_app(proc)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    d = Path(os.environ.get("GENLAB_SCREENSHOTS", tmp_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


MAIN = '[data-testid="stMain"]'  # the app's own block: Streamlit's header has buttons of its own ("Stop")
PLOT = MAIN + " .js-plotly-plot"


def _main(page):
    return page.locator(MAIN)


def _goto(page, url: str, title: str):
    page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]')
    _main(page).get_by_role("heading", name=title, exact=True).wait_for(timeout=60_000)
    _idle(page)


def _idle(page):
    """Wait until no script run is in progress (Streamlit shows its status widget while one is)."""
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def _no_exception(page):
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def _first_image_src(page) -> str:
    return _main(page).locator('[data-testid="stImage"] img').first.get_attribute("src")


def _points(page) -> int:
    return page.evaluate(f"""() => {{ const g = document.querySelector({PLOT!r});
        return g && g.data ? Math.max(0, ...g.data.map(t => (t.x || []).length)) : 0; }}""")


def _wait_points(page, more_than: int, timeout: int):
    page.wait_for_function(
        f"""() => {{ const g = document.querySelector({PLOT!r});
        return g && g.data && g.data.some(t => (t.x || []).length > {more_than}); }}""",
        timeout=timeout,
    )


def _move_temperature(page):
    before = _first_image_src(page)
    slider = _main(page).get_by_role("slider", name="Temperature")
    slider.focus()
    for _ in range(4):
        slider.press("ArrowRight")
    image = MAIN + ' [data-testid="stImage"] img'
    page.wait_for_function(f"() => document.querySelector({image!r}).src !== {before!r}", timeout=60_000)
    assert _first_image_src(page) != before


def _status(page, status: str):
    """The selected run's progress line says ``status`` (bold, as the page writes it)."""
    return _main(page).locator("strong", has_text=re.compile(f"^{status}$")).first


def _launch_tiny_run(page, steps: int):
    main = _main(page)
    # The expander arrives already open or closed, but its form arrives later: decide from the expander's
    # own state (Streamlit marks a closed one's body inert), never from whether the form has rendered yet.
    header = page.get_by_text("New run", exact=True)  # a `has=` locator is relative to what it filters
    body = main.locator('[data-testid="stExpander"]').filter(has=header).locator('[data-testid="stExpanderDetails"]')
    if body.get_attribute("inert") is not None:
        main.get_by_text("New run", exact=True).click()
    main.get_by_label("Steps or epochs", exact=True).wait_for()
    main.get_by_label("Image size").click()
    page.get_by_role("option", name="16", exact=True).click()  # the dropdown is a portal outside stMain
    main.get_by_text("steps", exact=True).click()
    for label, v in (("Steps or epochs", steps), ("Batch size", 16), ("latent dim", 4), ("width", 4), ("max width", 8)):
        box = main.get_by_label(label, exact=True)
        box.fill(str(v))
    main.get_by_role("button", name="Launch run", exact=True).click()
    _status(page, "running").wait_for(timeout=120_000)


def test_a_deep_link_as_the_servers_first_request_gets_the_apps_router(server, browser):
    """Runs first on a fresh server. With the pages in a folder named ``pages/``, Streamlit served
    ``/sample`` through its folder-based navigation (sidebar: app, common, compare, ...) until some
    session had loaded ``/``; the folder is ``app_pages/`` so that only ``st.navigation`` routes."""
    url, _ = server
    page = browser.new_page()
    try:
        page.goto(url + "/sample")
        page.get_by_role("heading", name="Sample", exact=True).wait_for(timeout=120_000)
        nav = page.locator('[data-testid="stSidebarNav"]')
        nav.get_by_role("link", name="Home").wait_for(timeout=60_000)
        assert nav.get_by_role("link", name="common").count() == 0
        page.locator('[data-testid="stSidebar"]').get_by_text("FID weights:").wait_for(timeout=60_000)
    finally:
        page.close()


def test_every_page_sliders_a_live_run_and_two_sessions(server, browser, shots, request):
    url, runs = server
    a = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
    request.addfinalizer(lambda: a.screenshot(path=str(shots / "last-state.png"), full_page=True))
    outside = []  # the app works offline: a page asks nothing of any other host (fonts, icons, analytics)
    a.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url))
    for path, title in (
        ("", "genlab"),
        ("train", "Train"),
        ("sample", "Sample"),
        ("compare", "Compare"),
        ("likelihood", "Likelihood"),
        ("models", "Models"),
    ):
        _goto(a, f"{url}/{path}", title)
        _no_exception(a)
        a.screenshot(path=str(shots / f"app-{path or 'home'}.png"), full_page=True)
    assert outside == []

    _goto(a, f"{url}/sample", "Sample")
    _move_temperature(a)
    _no_exception(a)

    # session A launches a run that lasts long enough to be watched
    _goto(a, f"{url}/train", "Train")
    _launch_tiny_run(a, steps=20_000)
    _no_exception(a)
    _wait_points(a, 1, timeout=120_000)
    first = _points(a)

    # session B, a second browser context (its own Streamlit session), samples while A trains
    b = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
    _goto(b, f"{url}/sample", "Sample")
    _move_temperature(b)
    _no_exception(b)
    _goto(b, f"{url}/train", "Train")  # and sees A's run live
    _status(b, "running").wait_for(timeout=60_000)
    _wait_points(b, 1, timeout=60_000)
    _no_exception(b)
    b.screenshot(path=str(shots / "app-train-second-session.png"), full_page=True)

    _wait_points(a, first, timeout=60_000)
    a.screenshot(path=str(shots / "app-train-live.png"), full_page=True)
    _main(a).get_by_role("button", name="Stop run", exact=True).click()
    _status(a, "stopped").wait_for(timeout=60_000)
    _no_exception(a)
    _no_exception(b)
    assert len(list(runs.glob("*/run.json"))) == 1  # launched once, whatever the reruns and sessions
