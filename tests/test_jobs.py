"""Background runs and the queue (genlab.runs.jobs): real training processes on a tiny model."""

import json
import os
import signal

import pytest

from conftest import TINY_VAE, stop_all_runs, tiny_train_config, wait_until
from genlab.models import load_model
from genlab.runs import jobs
from genlab.runs.config import TrainConfig
from genlab.runs.rundir import RunDir

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _stop_leftovers(tmp_path):
    yield
    stop_all_runs(tmp_path)


def _req(steps):
    return TrainConfig(
        model="vae",
        dataset="emoji",
        image_size=16,
        max_steps=steps,
        batch_size=16,
        log_every=5,
        model_config=TINY_VAE,
    )


def _last_step(run: RunDir) -> int:
    return max((r.step for r in run.read_metrics() if r.kind == "train"), default=0)


def _trained(run: RunDir) -> bool:
    return any(r.kind == "train" for r in run.read_metrics())


def test_queue_runs_one_at_a_time_in_order_and_stop_works_while_queued(tmp_path):
    a = jobs.launch(_req(100_000), tmp_path, name="a", max_concurrent=1)
    b = jobs.launch(_req(100_000), tmp_path, name="b", max_concurrent=1)
    c = jobs.launch(_req(100_000), tmp_path, name="c", max_concurrent=1)
    assert {r.status() for r in (a, b, c)} <= {"queued", "running"}  # visible at once, none "interrupted"
    wait_until(lambda: a.status() == "running" and _trained(a), 90, "a to train", poll_s=0.3)
    # while a trains on (three more logged rows), b and c, polling for the slot, must stay queued
    first = _last_step(a)
    wait_until(lambda: _last_step(a) >= first + 15, 90, "a to log three more rows", poll_s=0.3)
    assert b.status() == "queued" and c.status() == "queued" and not _trained(b)
    jobs.stop(c)  # leaves the queue without training
    wait_until(lambda: c.status() == "stopped", 90, "c to stop", poll_s=0.3)
    assert not c.read_metrics() and not c.has_checkpoint()
    jobs.stop(a)
    wait_until(lambda: a.status() == "stopped", 90, "a to stop", poll_s=0.3)
    wait_until(lambda: b.status() == "running" and _trained(b), 90, "b to train", poll_s=0.3)  # b takes the freed slot
    a_end = max(r.timestamp for r in a.read_metrics())
    assert min(r.timestamp for r in b.read_metrics()) > a_end  # and never trained beside a
    jobs.stop(b)
    wait_until(lambda: b.status() == "stopped", 90, "b to stop", poll_s=0.3)
    assert b.has_checkpoint()
    # a run stopped while queued starts from step 0 when resumed
    jobs.resume(c, max_concurrent=1, max_steps=10)
    wait_until(lambda: c.status() == "finished", 90, "c to finish", poll_s=0.3)
    assert [r.step for r in c.read_metrics() if r.kind == "train"] == [5, 10]


def test_two_slots_train_two_runs_at_once(tmp_path):
    a = jobs.launch(_req(100_000), tmp_path, name="a", max_concurrent=2)
    b = jobs.launch(_req(100_000), tmp_path, name="b", max_concurrent=2)
    wait_until(lambda: a.status() == "running" and b.status() == "running", 90, "a and b to run", poll_s=0.3)
    for r in (a, b):
        jobs.stop(r)
    wait_until(lambda: a.status() == "stopped" and b.status() == "stopped", 90, "a and b to stop", poll_s=0.3)


def test_a_launched_run_trains_at_a_lower_cpu_priority_than_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_RUN_NICE", "7")
    run = jobs.launch(_req(100_000), tmp_path, name="a", max_concurrent=1)
    wait_until(lambda: run.status() == "running" and _trained(run), 90, "the run to train", poll_s=0.3)
    assert "--nice" in run.info().launch  # so a resume from the app is lowered the same way
    pid = run.info().pid
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)
    if os.path.exists(f"/proc/{pid}/autogroup"):  # Linux ranks sessions first: the run's is lowered as well
        assert open(f"/proc/{pid}/autogroup").read().split()[-1] == "7"
    jobs.stop(run)
    wait_until(lambda: run.status() == "stopped", 90, "the run to stop", poll_s=0.3)
    monkeypatch.setenv("GENLAB_RUN_NICE", "20")
    with pytest.raises(ValueError, match="GENLAB_RUN_NICE must be a whole number from 0 to 19, got '20'"):
        jobs.launch(_req(10), tmp_path, name="b", max_concurrent=1)


def test_a_killed_queued_run_shows_interrupted_and_frees_nothing(tmp_path):
    a = jobs.launch(_req(100_000), tmp_path, name="a", max_concurrent=1)
    b = jobs.launch(_req(100_000), tmp_path, name="b", max_concurrent=1)
    wait_until(
        lambda: a.status() == "running" and b.info().status == "queued" and b.is_locked(),
        90,
        "a to run while b is queued and holds its lock",
        poll_s=0.3,
    )
    os.kill(b.info().pid, signal.SIGKILL)
    wait_until(lambda: b.status() == "interrupted", 90, "b to show interrupted", poll_s=0.3)
    assert a.status() == "running"
    jobs.stop(a)
    wait_until(lambda: a.status() == "stopped", 90, "a to stop", poll_s=0.3)


def test_launch_refuses_a_taken_name_and_an_unknown_dataset(tmp_path):
    from genlab.data import DatasetUnavailable

    with pytest.raises(DatasetUnavailable, match="unknown dataset"):
        jobs.launch(TrainConfig(model="vae", dataset="nope"), tmp_path, name="x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(DatasetUnavailable, match="cifar10 is not available here"):  # offline in tests
        jobs.launch(TrainConfig(model="vae", dataset="cifar10"), tmp_path, name="y")
    with pytest.raises(DatasetUnavailable):
        jobs.launch(TrainConfig(model="vae", dataset=f"folder:{tmp_path / 'nowhere'}"), tmp_path, name="z")
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "run.json").write_text(json.dumps({"status": "finished"}))
    with pytest.raises(FileExistsError, match="already exists"):
        jobs.launch(_req(10), tmp_path, name="taken")


def test_names_are_sanitized(tmp_path):
    run = jobs.launch(_req(10), tmp_path, name="../../evil name")
    assert run.path.parent == tmp_path and "/" not in run.path.name and ".." not in run.path.name
    wait_until(lambda: run.status() == "finished", 90, "the run to finish", poll_s=0.3)


@pytest.mark.slow
def test_a_launched_run_whose_process_dies_at_once_resumes_with_the_forms_config(tmp_path):
    asked = tiny_train_config(
        max_steps=4, batch_size=8, eval_batches=1, lr=5e-4, seed=7, model_config={**TINY_VAE, "beta": 2.0}
    )
    try:
        run = jobs.launch(asked, tmp_path, name="r", max_concurrent=1)
        assert run.config() == asked  # the whole config is on disk before the process runs
        os.kill(run.info().pid, signal.SIGKILL)  # it dies before it could write anything
        wait_until(lambda: run.status() == "interrupted", 60, "the killed run to show interrupted", poll_s=0.05)
        assert run.status() == "interrupted" and run.config() == asked
        jobs.resume(run, max_concurrent=1)
        wait_until(lambda: run.status() in ("finished", "failed"), 180, "the resumed run to end", poll_s=0.1)
        assert run.status() == "finished", run.info().error
        assert run.config() == asked and run.info().steps_per_epoch == len(load_emoji_train()) // 8
        assert load_model(run.path).config.beta == 2.0
    finally:
        stop_all_runs(tmp_path)


def load_emoji_train():
    from genlab.data import load_dataset

    return load_dataset("emoji", 16).train
