"""A newcomer's first run, in a real browser against the shipped checkpoints (a fresh clone's defaults):
open Train, change nothing, Launch; watch the chart grow; wait for it to finish; see on Sample that it
draws what its recipe draws, by its test bits/dim, and find it on Home beside the shipped models.

Set GENLAB_SCREENSHOTS=DIR to keep the screenshots (docs/img/app-first-run-*.png come from here).
"""

import os
import re
from pathlib import Path

import pytest
from appserver import CHROMIUM, CHROMIUM_ARGS, free_port, start_app, stop_app, wait_healthy

from conftest import stop_all_runs, wait_until
from genlab.recipes import fastest
from genlab.runs.rundir import RunDir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="no chromium: apt-get install -y chromium (.ci/run does)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")

MAIN = '[data-testid="stMain"]'
PLOT = MAIN + " .js-plotly-plot"
FINISH_S = 900  # the fastest preset takes about 1 minute on the 2-core dev CPU; CI shares the machine


@pytest.fixture
def fresh_app(tmp_path):
    """The app as a fresh clone starts it: the repository's checkpoints, an empty runs folder."""
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "GENLAB_CHECKPOINTS"}
    env["GENLAB_RUNS"] = str(runs)
    port, log = free_port(), tmp_path / "streamlit.log"
    proc = start_app(env, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, timeout=90)
        yield url, runs
    finally:
        stop_all_runs(runs)
        stop_app(proc)


def _points(page) -> int:
    """Points of the train bits/dim curve in the Train page's first chart."""
    return page.evaluate(f"""() => {{ const g = document.querySelector({PLOT!r});
        const t = g && g.data ? g.data.find(t => t.name === "train bits/dim") : null;
        return t ? (t.x || []).length : 0; }}""")


def _no_exception(page):
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def test_the_fastest_preset_launched_unchanged_trains_what_its_recipe_promises(fresh_app, tmp_path):
    url, runs = fresh_app
    preset = fastest()
    ceiling = preset.bpd_ceiling()
    assert ceiling is not None, "the fresh clone's shipped checkpoint states the recipe's figure"
    shots = Path(os.environ.get("GENLAB_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 2800}).new_page()
        main = page.locator(MAIN)
        page.goto(url + "/train")
        main.get_by_role("heading", name="Train", exact=True).wait_for(timeout=120_000)
        main.get_by_role("button", name="Launch run", exact=True).wait_for(timeout=60_000)
        chosen = main.get_by_role("combobox", name="Start from").input_value()
        assert chosen.startswith(preset.title) and " · about " in chosen  # the preset it starts from, timed
        main.get_by_role("button", name="Launch run", exact=True).click()  # nothing changed
        main.locator("strong", has_text=re.compile("^running$")).first.wait_for(timeout=120_000)
        _no_exception(page)

        wait_until(lambda: _points(page) >= 2, 300, "the chart's first points", poll_s=1.0)
        first = _points(page)
        wait_until(lambda: _points(page) > first, 300, "the chart to grow", poll_s=1.0)
        page.screenshot(path=str(shots / "app-first-run-live.png"), full_page=True)

        run = RunDir(next(runs.glob("*/run.json")).parent)
        wait_until(lambda: run.info().status in ("finished", "failed"), FINISH_S, "the run to finish", poll_s=5)
        assert run.info().status == "finished", run.info().error
        main.locator("strong", has_text=re.compile("^finished$")).first.wait_for(timeout=60_000)
        _no_exception(page)
        page.screenshot(path=str(shots / "app-first-run-finished.png"), full_page=True)
        pngs = list(run.samples.glob("*.png"))
        assert 0 < len(pngs) <= 32

        # Sample: pick the run; the page states its test bits/dim, which reach the recipe's
        page.goto(url + "/sample")
        main.get_by_role("heading", name="Sample", exact=True).wait_for(timeout=120_000)
        main.get_by_label("Model").click()
        page.get_by_role("option", name=re.compile(f"^run: {re.escape(run.path.name)} \\(")).click()  # not its best
        caption = main.get_by_text(re.compile(r"^Test bits/dim [0-9.]+ \(.*evaluation at step")).first
        caption.wait_for(timeout=60_000)  # the run's own figure, not the shipped model's (its card)
        bpd = float(re.match(r"Test bits/dim ([0-9.]+)", caption.inner_text()).group(1))
        assert bpd <= ceiling, f"test bits/dim {bpd:.3f} above the recipe's {ceiling:.3f}"
        main.locator('[data-testid="stImage"] img').first.wait_for(timeout=60_000)  # its sample grid
        _no_exception(page)
        page.screenshot(path=str(shots / "app-first-run-sample.png"), full_page=True)

        # Home shows it beside the shipped models, labelled as the user's own
        page.goto(url)
        main.get_by_text(re.compile(f"^your run · {re.escape(run.path.name)}")).wait_for(timeout=120_000)
        browser.close()
