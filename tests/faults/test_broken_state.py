"""Faults: damaged checkpoints and configs, and two hands on one run. Each is answered in one sentence,
and what was on disk before is still there."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_VAE, tiny_train_config, vae_flags, wait_until
from genlab import CheckpointError, load_model
from genlab.cli import main
from genlab.runs.rundir import RunDir
from genlab.runs.trainer import Trainer

pytestmark = pytest.mark.fault
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "run"
    cfg = tiny_train_config(max_steps=6, batch_size=16, eval_batches=1)
    assert Trainer(cfg, out).fit() == "finished"
    return out


def _copy(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(0, min(len(data), 64)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip], ids=["truncated", "corrupted"])
@pytest.mark.parametrize(
    "name,sentence",
    [
        ("model.safetensors", "is not a readable safetensors file"),
        ("optimizer.safetensors", "optimizer.safetensors is damaged or does not fit this model"),
        ("trainer_state.json", "trainer_state.json is damaged"),
    ],
)
def test_a_damaged_checkpoint_file_is_one_sentence_and_the_run_says_so(
    trained, tmp_path, capsys, damage, name, sentence
):
    run = RunDir(_copy(trained, tmp_path))
    damage(run.checkpoint / name)
    before = {p.name: p.read_bytes() for p in run.checkpoint.iterdir()}
    code = main(["train", "--resume", str(run.path), "--max-steps", "9"])
    err = capsys.readouterr().err
    assert code != 0 and sentence in err and "Traceback" not in err, err
    assert sentence in run.info().error and run.status() == "failed"  # the app shows why
    assert {p.name: p.read_bytes() for p in run.checkpoint.iterdir()} == before  # nothing overwritten


@pytest.mark.parametrize(
    "edit,sentence",
    [
        (lambda c: {**c, "colour": "red"}, "has fields ['colour'] that VAEConfig does not know"),
        (lambda c: {k: v for k, v in c.items() if k != "model_type"}, "has no 'model_type'"),
        (lambda c: {k: v for k, v in c.items() if k != "latent_dim"}, "has shape"),  # default 128 != the weights' 4
        (lambda c: {**c, "latent_dim": 5}, "has shape"),
        (lambda c: {**c, "genlab_format": 2}, "was written by a newer genlab (format 2"),
        (lambda c: {**c, "model_type": "gan"}, "unknown model type 'gan'"),
    ],
)
def test_a_config_that_does_not_fit_is_one_sentence(trained, tmp_path, edit, sentence):
    folder = _copy(trained, tmp_path) / "checkpoint"
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["genlab_format"] == 1  # every saved config carries its format version
    (folder / "config.json").write_text(json.dumps(edit(cfg)))
    with pytest.raises(CheckpointError, match=sentence.replace("(", r"\(").replace("[", r"\[")):
        load_model(folder)


def test_weights_of_the_wrong_shape_name_the_tensor(trained, tmp_path):
    folder = _copy(trained, tmp_path) / "checkpoint"
    from safetensors.torch import load_file, save_file

    w = load_file(str(folder / "model.safetensors"))
    name = next(iter(w))
    w[name] = torch.zeros(3, 3)
    save_file(w, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"tensor '{name}' has shape"):
        load_model(folder)


def _cli(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "genlab", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _step(state: Path) -> int:
    """The checkpoint's step; -1 while there is none (or during the instant its folder is swapped)."""
    try:
        return json.loads(state.read_text())["step"]
    except (OSError, ValueError):
        return -1


@pytest.mark.slow
def test_two_processes_resuming_one_run_one_wins_the_other_is_told_who_has_it(trained, tmp_path):
    run = RunDir(_copy(trained, tmp_path))
    first = _cli("train", "--resume", str(run.path), "--max-steps", "100000")
    try:
        wait_until(lambda: run.status() == "running", 120, "the first resume to run", poll_s=0.05)
        second = subprocess.run(
            [sys.executable, "-m", "genlab", "train", "--resume", str(run.path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert f"is in use by PID {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert run.status() == "running"  # the second one changed nothing
        from genlab.runs import jobs

        jobs.stop(run)
        jobs.stop(run)  # Stop pressed twice: the same as once
        with pytest.raises(RuntimeError, match="stop it before resuming"):
            jobs.resume(run)  # Resume pressed while it is still stopping
        assert first.wait(120) == 0
    finally:
        first.kill()
    assert run.status() == "stopped"
    load_model(run.path)


@pytest.mark.slow
def test_sigkill_at_five_random_steps_then_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    import random

    args = [
        "train",
        "vae",
        "--dataset",
        "emoji",
        "--image-size",
        "16",
        "--batch-size",
        "16",
        *vae_flags(TINY_VAE),
        "--log-every",
        "2",
        "--checkpoint-every",
        "4",
        "--eval-every",
        "1000",
        "--eval-batches",
        "1",
        "--sample-n",
        "4",
        "--device",
        "cpu",
        "--max-steps",
        "120",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    straight = subprocess.run(
        [sys.executable, "-m", "genlab", *args, "--out", str(tmp_path / "straight")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert straight.returncode == 0, straight.stdout + straight.stderr
    run = RunDir(tmp_path / "killed")
    state = run.checkpoint / "trainer_state.json"
    rng = random.Random(0)
    cmd = [*args, "--out", str(run.path)]
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "genlab", *cmd],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        target = max(0, _step(state)) + rng.randint(3, 18)
        wait_until(
            lambda p=proc, t=target: p.poll() is not None or _step(state) >= t,
            120,
            f"a checkpoint at step {target} or the process to end",
            poll_s=0.05,
        )
        proc.kill()
        proc.wait()
        assert run.status() in ("interrupted", "finished")
        cmd = ["train", "--resume", str(run.path)]
    final = subprocess.run(
        [sys.executable, "-m", "genlab", *cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stdout + final.stderr
    assert run.status() == "finished"
    steps = [r.step for r in run.read_metrics() if r.kind == "train"]
    assert steps == list(range(2, 121, 2))  # strictly increasing, no gap, no duplicate
    a, b = load_model(tmp_path / "straight").state_dict(), load_model(run.path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
