"""The Hugging Face Space: README front matter, the Dockerfile, and public mode (GENLAB_PUBLIC=1)."""

import json
import re
from pathlib import Path

import pytest

from conftest import MICRO_VAE, stop_all_runs, wait_until
from genlab import public
from genlab.public import PublicModeError
from genlab.runs import jobs
from genlab.runs.config import TrainConfig
from genlab.runs.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent


def test_readme_front_matter_is_a_docker_space_listing_the_default_repo_ids():
    from huggingface_hub import metadata_load

    from genlab.recipes import SHIPPED as RECIPES

    meta = metadata_load(ROOT / "README.md")
    assert meta["sdk"] == "docker" and meta["app_port"] == 8501 and meta["title"] == "genlab"
    assert "streamlit" in meta["tags"]
    assert meta["models"] == [r.repo_id for r in RECIPES]  # one place defines them: genlab.recipes
    assert all((ROOT / "checkpoints" / r.name / "config.json").is_file() for r in RECIPES)


def _readme_installs() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("### Install without make", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip().startswith("pip install")]


def test_dockerfile_installs_what_the_readme_installs_and_runs_public_as_uid_1000():
    docker = (ROOT / "Dockerfile").read_text()
    runs = [" ".join(line.split()) for line in re.findall(r"^RUN (.+)$", docker, re.M)]
    installs = _readme_installs()
    assert len(installs) == 3
    for cmd in installs:
        assert cmd in runs, f"the Dockerfile does not run `{cmd}`"
    assert "--index-url https://download.pytorch.org/whl/cpu" in docker  # CPU-only torch first
    assert re.search(r"useradd .*-u 1000", docker) and re.search(r"^USER user$", docker, re.M)
    for var in ("GENLAB_PUBLIC=1", "GENLAB_HOME=", "HF_HOME=", "TORCH_HOME=", "GENLAB_RUNS="):
        assert var in docker
    assert "HEALTHCHECK" in docker and "/_stcore/health" in docker and "--server.port=8501" in docker
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "runs"} <= set(ignored)


@pytest.fixture
def public_mode(tmp_path, monkeypatch):
    runs, ck = tmp_path / "runs", tmp_path / "checkpoints"
    runs.mkdir()
    ck.mkdir()
    monkeypatch.setenv("GENLAB_PUBLIC", "1")
    monkeypatch.setenv("GENLAB_RUNS", str(runs))
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ck))
    monkeypatch.setenv("GENLAB_PUBLIC_MAX_STEPS", "3")
    monkeypatch.setenv("GENLAB_PUBLIC_MAX_MINUTES", "2")
    monkeypatch.setenv("GENLAB_MAX_RUNS", "1")
    yield runs
    stop_all_runs(runs)


def test_paths_outside_the_app_folders_are_refused(public_mode, tmp_path):
    inside = public_mode / "data"
    inside.mkdir()
    assert public.check_path(inside) == inside.resolve()
    for bad in ("/etc", str(public_mode / ".." / ".."), "~"):
        with pytest.raises(public.PublicModeError, match="public genlab app"):
            public.check_path(bad)
    escape = public_mode / "link"  # a symlink inside that points outside is outside
    escape.symlink_to("/etc")
    with pytest.raises(public.PublicModeError):
        public.check_path(escape)


def test_launch_refuses_outside_folders_and_creates_nothing(public_mode, tmp_path):
    req = TrainConfig(model="vae", dataset="folder:/etc", image_size=8, max_steps=2)
    with pytest.raises(public.PublicModeError, match="data folder"):
        jobs.launch(req, public_mode)
    with pytest.raises(public.PublicModeError, match="runs folder"):
        jobs.launch(TrainConfig(model="vae", image_size=8, max_steps=2), tmp_path / "elsewhere")
    assert not any(public_mode.iterdir()) and not (tmp_path / "elsewhere").exists()


def test_public_mode_is_off_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv("GENLAB_PUBLIC", raising=False)
    assert public.check_path("/etc") == Path("/etc")
    req = TrainConfig(model="vae", epochs=50)
    assert public.cap_config(req) is req and public.cap_runs(4) == 4


@pytest.mark.slow
def test_a_launched_run_is_capped_in_steps_minutes_and_concurrency(public_mode):
    # asks for 50 epochs, four runs at once and an hour: gets 3 steps, one slot and 2 minutes
    req = TrainConfig(
        model="vae",
        dataset="emoji",
        image_size=8,
        epochs=50,
        batch_size=8,
        max_minutes=60,
        eval_every=1000,
        model_config=MICRO_VAE,
    )
    run = jobs.launch(req, public_mode, name="capped", max_concurrent=4, processes=4, owner="visitor-a")
    launch = run.info().launch
    assert launch[launch.index("--queue") + 1] == "1"
    assert "--nproc-per-node" not in launch and run.info().processes == 1  # one process per visitor run
    wait_until(lambda: run.status() in ("finished", "failed"), 180, "the capped run to end", poll_s=0.2)
    info = run.info()
    assert run.status() == "finished", info.error
    assert info.config.step_limit == 3 and info.config.max_minutes == 2
    assert info.total_steps == 3
    assert max(r.step for r in run.read_metrics()) == 3
    # another visitor can neither resume nor delete it
    for act in (lambda: jobs.resume(run, owner="visitor-b"), lambda: jobs.delete(run, owner="visitor-b")):
        with pytest.raises(PublicModeError, match="only the visitor who launched capped can"):
            act()
    assert "visitor-a" not in run.run_json.read_text()  # run.json keeps a hash of the token, not the token
    # resuming it for more cannot lift the caps either
    jobs.resume(run, max_concurrent=4, epochs=100, step_limit=1000, owner="visitor-a")
    args = json.loads((run.path / "run.json").read_text())
    wait_until(lambda: run.status() in ("finished", "failed"), 180, "the resumed run to end", poll_s=0.2)
    assert RunDir(run.path).config().step_limit == 3, args
    assert max(r.step for r in run.read_metrics()) == 3


def test_train_page_in_public_mode_has_no_runs_folder_field_and_shows_the_caps(public_mode, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    assert not [t for t in at.text_input if t.key == "runs_root"]
    text = " ".join(c.value for c in at.caption)
    assert "each run is capped at 3 steps and 2 minutes" in text and "runs train 1 at a time" in text


def test_a_visitor_deletes_only_the_runs_their_session_launched(public_mode, tmp_path):
    run = RunDir(tmp_path / "someone-elses")
    run.path.mkdir()
    (run.path / "run.json").write_text(json.dumps({"status": "finished", "owner": jobs.owner_hash("visitor-a")}))
    for visitor in ("visitor-b", None):
        with pytest.raises(PublicModeError, match="only the visitor who launched someone-elses can delete it"):
            jobs.delete(run, owner=visitor)
    assert run.exists()
    (run.path / "run.json").write_text('{"status": "finished"}')  # a run launched before owners were recorded
    with pytest.raises(PublicModeError):
        jobs.delete(run, owner="visitor-b")
    (run.path / "run.json").write_text(json.dumps({"status": "finished", "owner": jobs.owner_hash("visitor-a")}))
    jobs.delete(run, owner="visitor-a")
    assert not run.path.exists()


def test_compare_bounds_its_tight_bound_to_few_test_images_in_public_mode(public_mode, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("GENLAB_CHECKPOINTS")  # the shipped models, to compare
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app_pages" / "compare.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert at.number_input(key="cmp_n").max == 200  # GENLAB_PUBLIC_MAX_BOUND_IMAGES: IWAE k=100 is 10 s per 100
    monkeypatch.setenv("GENLAB_PUBLIC", "0")
    at.run()
    assert at.number_input(key="cmp_n").max == 2000
