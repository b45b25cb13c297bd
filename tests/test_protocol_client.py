"""The load generator speaks Streamlit's protocol well enough to use the app as a tab does: it opens the
Sample page on a real server, moves the temperature slider and receives each new grid over HTTP."""

import asyncio
import os
import sys

import pytest
from appserver import ROOT, free_port, start_app, stop_app, wait_healthy

sys.path.insert(0, str(ROOT / "bench"))
from protocol_client import crowd, run_page  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(port, log file) of ``streamlit run app.py`` with the shipped checkpoints, shared by this module's tests."""
    tmp = tmp_path_factory.mktemp("served")
    env = {k: v for k, v in os.environ.items() if k != "GENLAB_CHECKPOINTS"}
    env["GENLAB_RUNS"] = str(tmp / "runs")
    port = free_port()
    proc = start_app(env, port, tmp / "streamlit.log")
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}", timeout=120)
        yield port, tmp / "streamlit.log"
    finally:
        stop_app(proc)


def test_simulated_visitors_move_a_slider_and_get_each_new_image(served):
    port, log = served
    values = [0.3, 0.6, 0.9]
    res = asyncio.run(crowd("127.0.0.1", port, "sample", "Temperature", values, 2, 12, think_s=(0.2, 0.5)))
    assert res.errors == [] and res.ready == 2
    assert len(res.latencies) >= 4 and all(0 < t < 60 for t in res.latencies)
    assert log.read_text().count("Traceback") == 0


async def _fragment_rerun(port: int):
    """Open Sample (its default model, a flow) and change the interpolation's path: a widget in a fragment."""
    async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None) as ws:
        page = await run_page(ws, "sample")
        fragment = page.fragments["Path"]
        again = await run_page(ws, "sample", {page.widgets["Path"]: "linear"}, fragment_id=fragment)
        return page, fragment, again


def test_a_widget_in_a_fragment_reruns_only_its_section_on_the_served_app(served):
    page, fragment, again = asyncio.run(_fragment_rerun(served[0]))
    assert fragment and page.fragments["Temperature"] == ""  # the interpolation is a fragment; the grid is not
    assert sorted(again.widgets) == ["From seed", "Path", "To seed"]  # nothing above it ran again
    assert len(again.images) == 1 and again.images[0] not in page.images and not again.exceptions
