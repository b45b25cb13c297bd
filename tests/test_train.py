"""The trainer and the run directory: a run writes its directory, resumes exactly, stops on its STOP file or
SIGTERM, keeps a second trainer out, recovers a half-done checkpoint swap, ends on a time budget and compiles.
(NaN losses and a full disk: tests/faults/test_training_faults.py; SIGKILL: tests/faults/test_broken_state.py.)"""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from conftest import TINY_VAE, tiny_train_config, wait_until
from genlab import load_model
from genlab.cli import main
from genlab.errors import RunLocked
from genlab.models import VAE
from genlab.runs.rundir import RunDir
from genlab.runs.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def train_steps(run: RunDir, kind="train"):
    return [r.step for r in run.read_metrics() if r.kind == kind]


def weights(path):
    return load_model(path).state_dict()


def test_a_run_writes_its_directory(tmp_path):
    out = tmp_path / "run"
    assert Trainer(tiny_train_config(), out).fit() == "finished"
    run = RunDir(out)
    info = run.info()
    assert info.status == "finished" and info.error is None
    assert info.config.model_config == TINY_VAE and info.seed == 0 and "torch" in info.versions
    assert train_steps(run) == [3, 6, 9, 12] and train_steps(run, "eval") == [6, 12]
    row = run.read_metrics()[0]
    for key in ("step", "epoch", "time", "images_per_s", "loss", "bpd", "recon_bpd", "kl_bpd", "grad_norm"):
        assert row.value(key) is not None, key
    assert "test_bpd" in [r for r in run.read_metrics() if r.kind == "eval"][0].metrics
    assert sorted(p.name for p in run.samples.iterdir()) == [
        "recon-0000006.png",
        "recon-0000012.png",
        "step-0000006.png",
        "step-0000012.png",
    ]
    assert sorted(p.name for p in run.checkpoint.iterdir()) == [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]
    model = load_model(out)  # a run directory loads like a model directory
    assert isinstance(model, VAE) and model.sample(2).shape == (2, 3, 16, 16)
    assert not (tmp_path / "run" / "checkpoint.new").exists()


def test_resume_takes_exactly_the_steps_of_an_uninterrupted_run(tmp_path):
    Trainer(tiny_train_config(), tmp_path / "straight").fit()
    Trainer(tiny_train_config(max_steps=6), tmp_path / "split").fit()
    assert Trainer(tiny_train_config(), tmp_path / "split", resume=True).fit() == "finished"
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)
    straight, split = RunDir(tmp_path / "straight"), RunDir(tmp_path / "split")
    assert train_steps(split) == train_steps(straight) == [3, 6, 9, 12]
    la = [r.value("loss") for r in straight.read_metrics() if r.kind == "train"]
    lb = [r.value("loss") for r in split.read_metrics() if r.kind == "train"]
    assert la == pytest.approx(lb, rel=1e-6)


def test_stop_file_ends_the_run_with_a_checkpoint_and_resume_finishes_it(tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(tiny_train_config(max_steps=400, eval_every=200), out)
    th = threading.Thread(target=lambda: setattr(trainer, "result", trainer.fit()))
    th.start()
    run = RunDir(out)
    try:
        wait_until(lambda: train_steps(run), 60, "the first logged training step", poll_s=0.05)
    finally:
        run.stop_file.touch()
    th.join(60)
    assert trainer.result == "stopped" and run.status() == "stopped"
    state = json.loads((run.checkpoint / "trainer_state.json").read_text())
    assert 3 <= state["step"] < 400
    assert Trainer(tiny_train_config(max_steps=state["step"] + 6, eval_every=200), out, resume=True).fit() == "finished"
    steps = train_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == state["step"] + 6
    assert not run.stop_file.exists()


def test_a_second_trainer_cannot_take_a_live_run(tmp_path):
    run = RunDir(tmp_path / "run")
    lock = run.acquire_lock()
    try:
        assert run.is_locked()
        with pytest.raises(RunLocked, match="another live process"):
            Trainer(tiny_train_config(), run.path).fit()
    finally:
        lock.release()
    assert not run.is_locked()


def test_resuming_a_run_another_process_trains_is_refused_before_anything_is_written(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    run.create(tiny_train_config(max_steps=40))
    (run.metrics_path).write_text('{"kind": "train", "step": 3, "epoch": 0.1, "time": 1.0, "timestamp": 1.0}\n')
    lock = run.acquire_lock()  # the live process that trains it
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    try:
        assert main(["train", "--resume", str(run.path), "--max-steps", "80"]) == 2
    finally:
        lock.release()
    assert "is in use by" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before  # nothing rewritten


def test_interrupted_checkpoint_swap_is_recovered(tmp_path):
    out = tmp_path / "run"
    Trainer(tiny_train_config(max_steps=6), out).fit()
    # a crash between the two renames of a swap leaves only checkpoint.old
    os.rename(out / "checkpoint", out / "checkpoint.old")
    (out / "checkpoint.new").mkdir()  # and an incomplete new one
    assert RunDir(out).status() == "finished"
    assert Trainer(tiny_train_config(max_steps=9), out, resume=True).fit() == "finished"
    assert train_steps(RunDir(out)) == [3, 6, 9]


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "genlab", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


@pytest.mark.slow
def test_sigterm_stops_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = _cli(
        "train",
        "vae",
        "--dataset",
        "emoji",
        "--image-size",
        "16",
        "--width",
        "4",
        "--latent-dim",
        "4",
        "--max-steps",
        "5000",
        "--log-every",
        "5",
        "--eval-every",
        "1000",
        "--sample-n",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    try:
        wait_until(lambda: train_steps(RunDir(out)), 120, "the first logged training step", poll_s=0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    assert RunDir(out).status() == "stopped"
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] >= 5


def test_a_time_budget_ends_the_run_as_finished_with_a_final_evaluation(tmp_path):
    out = tmp_path / "run"
    assert Trainer(tiny_train_config(max_steps=100000, max_minutes=0.02, eval_every=100000), out).fit() == "finished"
    run = RunDir(out)
    last = train_steps(run)[-1]
    assert 0 < last < 100000 and train_steps(run, "eval") == [last]
    assert run.info().total_steps == last
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == last


@pytest.mark.slow
def test_compile_trains_the_same_steps_as_eager(tmp_path):
    """--compile changes how the step runs, not what it computes (torch.compile on the CPU here). Not bit for
    bit: compiled kernels sum in another order and inductor draws the VAE's noise from its own generator,
    which moves the loss by ~2e-4 relative over 3 steps."""
    eager = Trainer(tiny_train_config(max_steps=3, log_every=1, eval_every=3), tmp_path / "eager").fit()
    compiled = Trainer(
        tiny_train_config(max_steps=3, log_every=1, eval_every=3, compile=True), tmp_path / "compiled"
    ).fit()
    assert eager == compiled == "finished"
    la = [r.value("loss") for r in RunDir(tmp_path / "eager").read_metrics() if r.kind == "train"]
    lb = [r.value("loss") for r in RunDir(tmp_path / "compiled").read_metrics() if r.kind == "train"]
    assert len(la) == 3 and la == pytest.approx(lb, rel=2e-3)
