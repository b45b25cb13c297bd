"""Faults while training: losses that turn NaN (from the first step or later), a learning rate that
diverges without NaN, and a disk that fills while a checkpoint is written. Each run says why it
stopped, and the last good checkpoint is untouched. (Moved here from tests/test_train.py.)"""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_VAE, tiny_train_config, vae_flags, wait_until
from genlab import load_model
from genlab.models import VAE
from genlab.runs.rundir import RunDir
from genlab.runs.trainer import Trainer

pytestmark = pytest.mark.fault
ROOT = Path(__file__).resolve().parents[2]


def weights(path):
    return load_model(path).state_dict()


def test_nan_losses_fail_the_run_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_loss = VAE.loss

    def poisoned(self, x, generator=None):
        calls["n"] += 0 if x.is_meta else 1  # the trainer sizes the model with one pass on the meta device first
        loss, m = real_loss(self, x, generator)
        return (loss * float("nan") if calls["n"] > 6 else loss), m

    monkeypatch.setattr(VAE, "loss", poisoned)
    out = tmp_path / "run"
    status = Trainer(tiny_train_config(max_steps=100, checkpoint_every=3, eval_every=100, max_nonfinite=5), out).fit()
    assert status == "failed"
    info = RunDir(out).info()
    assert info.error.startswith("step 11: the loss or gradients were not finite for 5 consecutive steps")
    assert "--lr" in info.error
    assert "checkpoint (step 6) is untouched" in info.error
    state = json.loads((out / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 6
    assert all(torch.isfinite(v).all() for v in weights(out).values() if v.is_floating_point())
    rows = [r for r in RunDir(out).read_metrics() if r.kind == "train"]
    assert [r.skipped_steps for r in rows] == [0, 0, 3]  # steps 7-9 skipped, logged at step 9


def test_nan_from_the_first_step_fails_saying_no_checkpoint_was_written(tmp_path, monkeypatch):
    real_loss = VAE.loss
    monkeypatch.setattr(
        VAE,
        "loss",
        lambda self, x, generator=None: tuple(
            (lambda lm: (lm[0] * float("nan"), lm[1]))(real_loss(self, x, generator))
        ),
    )
    out = tmp_path / "run"
    assert Trainer(tiny_train_config(max_steps=100, max_nonfinite=4), out).fit() == "failed"
    info = RunDir(out).info()
    assert info.error.startswith("step 4: the loss or gradients were not finite for 4 consecutive steps")
    assert info.error.endswith("No checkpoint had been written yet.") and not RunDir(out).has_checkpoint()


def test_a_learning_rate_that_diverges_without_nan_is_flagged_and_the_run_goes_on(tmp_path):
    out = tmp_path / "run"
    # lr 0.5: the first steps throw the VAE to ~2e5 bits/dim; gradient clipping then brings it back to ~7
    assert (
        Trainer(tiny_train_config(max_steps=40, batch_size=16, log_every=5, eval_every=40, lr=0.5), out).fit()
        == "finished"
    )
    run = RunDir(out)
    bpd = [r.value("bpd") for r in run.read_metrics() if r.kind == "train"]
    assert bpd[0] > 1000 and bpd[-1] < 9
    assert run.info().warning.startswith("train bits/dim reached") and "--lr" in run.info().warning
    from genlab.runs.summary import summarize

    assert summarize(run).warning == run.info().warning  # the Train page shows it under the run


def test_a_full_disk_fails_cleanly_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """Without root (no tmpfs): the disk 'fills' inside the second checkpoint's weights write."""
    import genlab.storage

    real_write = genlab.storage.atomic_write_bytes
    calls = {"n": 0}

    def write(path, data):
        if Path(path).name == "model.safetensors":
            calls["n"] += 1
            if calls["n"] > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(genlab.storage, "atomic_write_bytes", write)
    monkeypatch.setattr("genlab.models.base.atomic_write_bytes", write)
    out = tmp_path / "run"
    assert Trainer(tiny_train_config(checkpoint_every=3, eval_every=100), out).fit() == "failed"
    info = RunDir(out).info()
    assert "disk is full" in info.error and "--resume" in info.error
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 3
    assert not (out / "checkpoint.new").exists()
    load_model(out)


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="mounting a size-limited tmpfs needs root (the fault-injecting test above covers the same path)",
)
def test_a_real_full_disk_during_training_keeps_the_previous_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        out = disk / "run"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "genlab",
                "train",
                "vae",
                "--dataset",
                "emoji",
                "--image-size",
                "16",
                "--batch-size",
                "16",
                *vae_flags(TINY_VAE),
                "--max-steps",
                "100000",
                "--log-every",
                "2",
                "--checkpoint-every",
                "4",
                "--eval-every",
                "100000",
                "--eval-batches",
                "1",
                "--sample-n",
                "4",
                "--device",
                "cpu",
                "--out",
                str(out),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until(lambda: (out / "checkpoint" / "trainer_state.json").is_file(), 120, "a checkpoint", poll_s=0.05)
        except BaseException:
            proc.kill()  # it would train on for ever
            raise
        try:  # take every free byte
            with open(disk / "filler", "wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * 65536)
        except OSError:
            pass
        output = proc.communicate(timeout=120)[0]
        run = RunDir(out)
        assert proc.returncode == 1, output
        assert run.status() == "failed" and "the disk is full" in run.info().error, output
        assert "--resume" in run.info().error
        step = json.loads((run.checkpoint / "trainer_state.json").read_text())["step"]
        assert step >= 4 and not (out / "checkpoint.new").exists()
        load_model(out)  # the previous checkpoint survived
        (disk / "filler").unlink()  # space again: the run resumes from it
        r = subprocess.run(
            [sys.executable, "-m", "genlab", "train", "--resume", str(out), "--max-steps", str(step + 4)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0 and run.status() == "finished", r.stdout + r.stderr
    finally:
        subprocess.run(["umount", "-l", str(disk)])
