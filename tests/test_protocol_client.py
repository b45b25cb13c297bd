"""The load generator speaks Streamlit's protocol well enough to use the app as a tab does: it opens the
Sample page on a real server, moves the temperature slider and receives each new grid over HTTP."""

import asyncio
import os
import sys
from pathlib import Path

import pytest
from appserver import ROOT, free_port, start_app, stop_app, wait_healthy

sys.path.insert(0, str(ROOT / "bench"))
from protocol_client import crowd  # noqa: E402

pytestmark = pytest.mark.slow


def test_simulated_visitors_move_a_slider_and_get_each_new_image(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GENLAB_CHECKPOINTS"}
    env["GENLAB_RUNS"] = str(tmp_path / "runs")
    port = free_port()
    proc = start_app(env, port, tmp_path / "streamlit.log")
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}", timeout=120)
        values = [0.3, 0.6, 0.9]
        res = asyncio.run(crowd("127.0.0.1", port, "sample", "Temperature", values, 2, 12, think_s=(0.2, 0.5)))
    finally:
        stop_app(proc)
    assert res.errors == [] and res.ready == 2
    assert len(res.latencies) >= 4 and all(0 < t < 60 for t in res.latencies)
    assert Path(tmp_path / "streamlit.log").read_text().count("Traceback") == 0
