"""torchrun + DistributedDataParallel on CPU (gloo): two processes train like one, write one run
directory, stop together, resume with another number of processes, and a dead rank fails the run.

Loss-curve tolerance (relative 2e-3). With the same seed and global batch, two processes see the
same images per step and average their gradients, so they take the same steps as one process except
for: (1) the noise each process draws (the VAE's reparameterisation, the flow's dequantisation) is
its own, not the single process's, so each loss is a different Monte Carlo estimate of the same
quantity; (2) on CPU the VAE's BatchNorm normalises each process's half of the batch (SyncBatchNorm
is CUDA-only); (3) sums run in another order. On these tiny models that moves the logged losses by
~1e-4 relative over 12 steps (measured: VAE 1.6e-4, RealNVP 2e-5). A real fault -- a wrong shard,
summed instead of averaged gradients, a process training on its own -- changes them by >1e-2.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_VAE, vae_flags, wait_until
from genlab import load_model
from genlab.runs.rundir import RunDir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "genlab"]
GENLAB = [sys.executable, "-m", "genlab"]
COMMON = [
    "--dataset",
    "emoji",
    "--image-size",
    "16",
    "--log-every",
    "3",
    "--eval-every",
    "6",
    "--eval-batches",
    "2",
    "--sample-n",
    "4",
    "--device",
    "cpu",
    "--seed",
    "0",
]
FAMILIES = {
    "vae": ["vae", "--batch-size", "32", *vae_flags(TINY_VAE), *COMMON],
    "realnvp": ["realnvp", "--batch-size", "16", "--num-blocks", "1", "--features", "8", *COMMON],
}
# every rank keeps the same moving average; rank 0 saves it, and it is what the eval rows and the grid show
FAMILIES["realnvp-ema"] = [*FAMILIES["realnvp"], "--ema", "0.9"]


def _run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    return r


def _losses(run: RunDir, kind: str, key: str) -> list[tuple[int, float]]:
    return [(r.step, r.value(key)) for r in run.read_metrics() if r.kind == kind]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_two_processes_train_like_one_and_their_checkpoint_loads_in_one(family, tmp_path):
    one, two = RunDir(tmp_path / "one"), RunDir(tmp_path / "two")
    r1 = _run([*GENLAB, "train", *FAMILIES[family], "--max-steps", "12", "--out", str(one.path)])
    assert r1.returncode == 0, r1.stdout + r1.stderr
    r2 = _run([*TORCHRUN, "train", *FAMILIES[family], "--max-steps", "12", "--out", str(two.path)])
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert two.status() == "finished" and two.info().processes == 2 and one.info().processes == 1
    for kind, key in (("train", "loss"), ("eval", "test_loss")):
        a, b = _losses(one, kind, key), _losses(two, kind, key)
        assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 2  # one writer: no duplicate rows
        np.testing.assert_allclose([v for _, v in b], [v for _, v in a], rtol=2e-3)
    # the checkpoint rank 0 wrote is the model rank 0 trained: loaded here, in one process, it draws the
    # very grid rank 0 saved at the last step (same seed, T=1)
    from torchvision.utils import save_image

    model = load_model(two.path)
    imgs = model.sample(4, temperature=1.0, generator=torch.Generator().manual_seed(0)).float()
    save_image(imgs, tmp_path / "again.png", nrow=2, padding=1)
    with Image.open(two.sample_grid(12)) as saved, Image.open(tmp_path / "again.png") as again:
        assert np.array_equal(np.asarray(saved), np.asarray(again))


def _long_job(run: RunDir, ready, act) -> tuple[int, str]:
    """A 2-process VAE job that would train for ever: wait until ``ready()``, then ``act(proc)``; return
    torchrun's exit status and output."""
    cmd = [
        *TORCHRUN,
        "train",
        *FAMILIES["vae"],
        "--max-steps",
        "100000",
        "--checkpoint-every",
        "6",
        "--out",
        str(run.path),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(ready, 120, "the job to be ready", poll_s=0.05)
        act(proc)
        out = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    return proc.returncode, out


def test_the_stop_file_stops_both_ranks_and_one_process_resumes_the_run(tmp_path):
    run = RunDir(tmp_path / "r")
    code, out = _long_job(run, run.has_checkpoint, lambda proc: run.stop_file.touch())
    assert code == 0, out
    assert run.status() == "stopped"
    stopped_at = json.loads((run.checkpoint / "trainer_state.json").read_text())["step"]
    # resumed by a single process with the same global batch: the step count goes on
    r = _run([*GENLAB, "train", "--resume", str(run.path), "--max-steps", str(stopped_at + 6)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert run.status() == "finished" and run.info().processes == 1
    steps = [s for s, _ in _losses(run, "train", "loss")]
    assert steps == sorted(set(steps)) and steps[-1] == stopped_at + 6  # strictly increasing, no duplicate
    assert [s for s in steps if s <= stopped_at] == list(range(3, stopped_at + 1, 3))  # the 2-process rows kept


def test_a_rank_that_dies_fails_the_run_with_its_name_and_keeps_the_checkpoint(tmp_path):
    run = RunDir(tmp_path / "r")
    pid_file = run.path / ".ranks" / "rank-1.pid"
    code, out = _long_job(
        run,
        lambda: run.has_checkpoint() and pid_file.is_file(),
        lambda proc: os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL),
    )
    assert code != 0, out
    info = run.info()
    assert run.status() == "failed", out
    assert info.error.startswith("rank 1 of 2 died at step") and "checkpoint (step" in info.error
    assert "--resume" in info.error
    load_model(run.path)  # the last checkpoint is intact


def test_sigterm_to_torchrun_stops_every_rank_with_one_final_checkpoint(tmp_path):
    run = RunDir(tmp_path / "r")
    _, out = _long_job(run, run.has_checkpoint, lambda proc: proc.send_signal(signal.SIGTERM))  # torchrun passes it on
    assert run.status() == "stopped", out
    step = json.loads((run.checkpoint / "trainer_state.json").read_text())["step"]
    assert step >= 6 and max(r.step for r in run.read_metrics()) <= step + 3
    load_model(run.path)
