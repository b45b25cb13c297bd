"""Start genlab's Streamlit app as a real server on 127.0.0.1, wait until it answers its health check, and
the chromium that drives it.

Shared by the browser test (tests/test_browser.py) and the app benchmarks (bench/bench_app.py,
bench/bench_load.py), which import it with tests/ on sys.path.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's, headless
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(
    env: dict,
    port: int,
    log: Path | None = None,
    cwd: Path = ROOT,
    user: int | None = None,
    python: str = sys.executable,
    flags: tuple[str, ...] = (),
    preload: bool = False,
) -> subprocess.Popen:
    """``streamlit run app.py [flags]`` on 127.0.0.1:port, headless, from the app folder ``cwd`` (as the
    unprivileged ``user`` id, when given); with ``preload``, ``python serve.py [flags]`` (the same server, its
    heavy imports done before it starts). Its output goes to ``log`` (a file, not a pipe: nobody reads a pipe,
    and a full one would block the server), or nowhere."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (the child holds it; closed below)
    try:
        return subprocess.Popen(
            [
                python,
                *(["serve.py"] if preload else ["-m", "streamlit", "run", "app.py"]),
                "--server.headless",
                "true",
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(port),
                "--browser.gatherUsageStats",
                "false",
                *flags,  # more streamlit options, e.g. --runner.postScriptGC false
            ],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
        )
    finally:
        if log:
            out.close()


def pin_apart(server_pid: int) -> str:
    """Give the server CPU 0 and this process (and what it starts from now on: a load generator, Chromium and
    its driver) the other CPUs, so that the clients' own work cannot slow the server. Call it right after
    ``start_app``, before the server has started any thread. What was done, as a phrase for a report."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    os.sched_setaffinity(server_pid, {cpus[0]})
    os.sched_setaffinity(0, set(cpus[1:]))
    return f"server on CPU {cpus[0]}, clients on CPU {','.join(map(str, cpus[1:]))}"


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 90.0, poll_s: float = 0.05) -> None:
    """Return once ``url/_stcore/health`` says ok; raise RuntimeError if the server exits or the time runs out."""
    deadline = time.time() + timeout
    while True:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {proc.returncode} before it was healthy") from None
            if time.time() > deadline:
                raise RuntimeError(f"streamlit was not healthy within {timeout:g} s") from None
            time.sleep(poll_s)


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
