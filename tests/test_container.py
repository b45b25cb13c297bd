"""The Space's container, as far as this machine allows (no Docker here): the app started with the
Dockerfile's environment (GENLAB_PUBLIC=1, HOME, GENLAB_HOME, GENLAB_RUNS, HF_HOME, TORCH_HOME under a
data folder), as an unprivileged user, from a read-only copy of the app folder. Every page opens in a real
browser, a capped run trains from the Train form, and nothing is written outside the data folder and the
home."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest
from appserver import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, start_app, stop_app, wait_healthy

from conftest import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="no chromium: apt-get install -y chromium (.ci/run does)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")

NOBODY = 65534
MAIN = '[data-testid="stMain"]'
PAGES = {"": "genlab", "sample": "Sample", "compare": "Compare", "train": "Train", "models": "Models"}


def dockerfile_env() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile, as KEY -> value."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def _usable_by_nobody(path: str) -> bool:
    """Whether every folder on the way to ``path`` (links followed) lets others in."""
    real = Path(os.path.realpath(path))
    return all(p.stat().st_mode & 0o001 for p in real.parents)


def _system_python() -> str:
    """The system's python of this version, which the unprivileged user can run."""
    candidate = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
    if candidate is None or not _usable_by_nobody(candidate):
        pytest.skip("no python of this version that an unprivileged user can run")
    return candidate


def _not_copied(folder: str, names: list[str]) -> set[str]:
    """What the image leaves out: the checkout's own runs, environment and history, and byte-code caches."""
    top = {".git", ".venv", "runs"} if Path(folder) == ROOT else set()
    return {n for n in names if n in top or n == "__pycache__" or n.endswith("_cache")}


def _writable(path: Path, on: bool) -> None:
    mode = "u+w" if on else "a-w"
    subprocess.run(["chmod", "-R", mode, str(path)], check=True)


@pytest.fixture
def space():
    """(url, data folder, home, app copy, marker file) of the app as the container starts it."""
    base = Path(tempfile.mkdtemp(prefix="genlab-space-"))
    base.chmod(0o755)  # the unprivileged user must reach its folders inside
    app, data, home = base / "app", base / "data", base / "home" / "user"
    shutil.copytree(ROOT, app, ignore=_not_copied)
    _writable(app, False)
    data.mkdir()
    home.mkdir(parents=True)
    root = os.geteuid() == 0
    user = NOBODY if root else None
    python, site = sys.executable, ""
    if root and not _usable_by_nobody(sys.executable):  # e.g. pyenv's python under /root (mode 700)
        python = _system_python()
        site = os.pathsep + sysconfig.get_paths()["purelib"]  # this venv's packages, readable by all
    if root:
        for p in (data, home):
            os.chown(p, NOBODY, NOBODY)
        (base / "home").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENLAB_", "HF_", "TORCH_"))}
    for key, value in dockerfile_env().items():
        if key not in ("PATH", "PIP_NO_CACHE_DIR"):
            env[key] = value.replace("/data", str(data)).replace("/home/user", str(home))
    env.update(GENLAB_OFFLINE="1", PYTHONPATH=str(app) + site, GENLAB_PUBLIC_MAX_STEPS="30", TMPDIR=str(data))
    marker, later = base / "started", base / "later"
    marker.touch()

    def past_the_marker() -> bool:  # then a file written from now on is newer than the marker (find -newer)
        later.touch()
        return later.stat().st_mtime_ns > marker.stat().st_mtime_ns

    wait_until(past_the_marker, 10, "the file system's clock to pass the marker's", poll_s=0.01)
    port = free_port()
    proc = start_app(env, port, data / "streamlit.log", cwd=app, user=user, python=python, preload=True)  # its CMD
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, timeout=120)
        yield url, data, home, app, marker, env, python
    finally:
        log = data / "streamlit.log"
        print(log.read_text()[-3000:] if log.is_file() else "no streamlit.log")  # shown when the test fails
        for stop in data.glob("runs/*/run.json"):
            (stop.parent / "STOP").touch()
        stop_app(proc)
        _writable(app, True)
        shutil.rmtree(base, ignore_errors=True)


def _written_by(uid: int, newer: Path) -> list[str]:
    """Files owned by ``uid`` and changed after ``newer``, anywhere on the root file system."""
    out = subprocess.run(
        [
            "find",
            "/",
            "-xdev",
            "(",
            "-path",
            "/proc",
            "-o",
            "-path",
            "/sys",
            ")",
            "-prune",
            "-o",
            "-user",
            str(uid),
            "-newer",
            str(newer),
            "-print",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out.stdout.split()


def test_the_space_runs_read_only_as_an_unprivileged_user_and_writes_only_its_data(space):
    url, data, home, app, marker, env, python = space
    where = subprocess.run(
        [python, "-c", "import genlab; print(genlab.__file__)"],
        env=env,
        cwd=app,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(app)), where  # the server imports the read-only copy, not this checkout
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 2400}).new_page()
        main = page.locator(MAIN)
        for path, heading in PAGES.items():
            page.goto(f"{url}/{path}")
            try:
                main.get_by_role("heading", name=heading).first.wait_for(timeout=120_000)
            except Exception:
                page.screenshot(path="/tmp/container-fail.png")
                raise
            page.wait_for_load_state("networkidle")
            errors = page.locator('[data-testid="stException"]')
            assert errors.count() == 0, (path, errors.first.inner_text())
        page.goto(f"{url}/train")
        main.get_by_role("button", name="Launch run", exact=True).click(timeout=120_000)  # the default preset
        deadline = time.monotonic() + 600  # for the run to start and to end
        run_json = wait_until(lambda: next(data.glob("runs/*/run.json"), None), 600, "the run's run.json", poll_s=0.5)

        def ended():
            status = re.search(r'"status": "(\w+)"', run_json.read_text()).group(1)
            return status if status in ("finished", "failed") else ""

        left = deadline - time.monotonic()
        status = wait_until(ended, left, lambda: "the run to end; run.json: " + run_json.read_text(), poll_s=1)
        assert status == "finished", run_json.read_text()
        assert '"step_limit": 30' in run_json.read_text()  # the operator's cap, from the environment
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()
    if os.geteuid() == 0:  # every file the server and its run wrote lies in the data folder or the home
        stray = [f for f in _written_by(NOBODY, marker) if not f.startswith((str(data), str(home)))]
        assert stray == []
