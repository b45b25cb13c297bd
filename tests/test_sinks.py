"""Trackers (``genlab train --log``): every metrics row, grid and the config reach TensorBoard, W&B and trackio,
read back here with each tool's own reader; a resumed run continues each series without a step twice; a
tracker that fails is said once and never stops the run; ``genlab export-logs`` replays old runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_VAE, tiny_train_config, vae_flags, wait_until
from genlab.cli import main
from genlab.errors import ConfigError
from genlab.runs import sinks, trackers
from genlab.runs.records import FidRow, TrainRow
from genlab.runs.rundir import RunDir
from genlab.runs.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "realnvp-mnist-32"


@pytest.fixture(autouse=True)
def private_trackers(tmp_path_factory, monkeypatch):
    """W&B as on a machine that never logged in, with its config and caches in a throwaway place."""
    home = tmp_path_factory.mktemp("home")
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "NETRC", "WANDB_PROJECT", "WANDB_ERROR_REPORTING"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")


def steps_and_values(run: RunDir, kind: str, key: str) -> list[tuple[int, float]]:
    return [(r.step, r.value(key)) for r in run.read_metrics() if r.kind == kind and r.value(key) is not None]


# -- TensorBoard's own reader ---------------------------------------------------------------------------------
def tensorboard(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def tb_series(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def tb_hparams(acc) -> dict:
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    )
    return {
        k: v.number_value if v.HasField("number_value") else v.string_value
        for k, v in data.session_start_info.hparams.items()
    }


# -- W&B's own reader (wandb leet inspect) and trackio's store -------------------------------------------------
def wandb_rows(run: RunDir) -> list[dict]:
    """Every history row of every offline attempt of the run, oldest attempt first."""
    return [h for d in sorted((run.path / "wandb").glob("offline-run-*")) for h in trackers.wandb_history(d)]


def wandb_series(rows: list[dict], tag: str) -> list[tuple[int, float]]:
    return [(h["step"]["num"], h["item"][tag]) for h in rows if tag in h["item"]]


def trackio_rows(run: RunDir) -> list[dict]:
    from trackio import SQLiteStorage

    return SQLiteStorage.get_logs(trackers.PROJECT, sinks.run_id(run.path.name, run.info().created_at))


def trackio_series(rows: list[dict], tag: str) -> list[tuple[int, float]]:
    return [(r["step"], r[tag]) for r in rows if tag in r]


def close(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    """The same steps, in the same order, with the same values (TensorBoard keeps float32)."""
    assert [s for s, _ in a] == [s for s, _ in b]
    np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=1e-6)


# -- what every tool is sent ------------------------------------------------------------------------------------
def test_each_row_is_tagged_the_same_way_for_every_tool():
    train = TrainRow(step=10, epoch=0.5, time=1.0, timestamp=0.0, lr=1e-3, images_per_s=99.0, metrics={"bpd": 3.0})
    assert sinks.tags(train) == {
        "train/bpd": 3.0,
        "train/lr": 1e-3,
        "train/images_per_s": 99.0,
        "train/epoch": 0.5,
        "train/skipped_steps": 0.0,
    }
    fid = FidRow(step=10, epoch=0.5, time=1.0, timestamp=0.0, fid=45.1, fid_samples=1000)
    assert sinks.tags(fid) == {"fid/FID@1000": 45.1}  # K in the name: FID@K is biased by K
    assert sinks.tags(FidRow(step=10, epoch=0.5, time=1.0, timestamp=0.0, fid=float("nan"))) == {}
    assert sinks.hparams({"lr": 1e-3, "ema": None, "model_config": {"width": 4}}) == {
        "ema": "none",
        "lr": 1e-3,
        "model_config.width": 4,
    }


def test_log_is_a_checked_list_of_trackers():
    assert tiny_train_config(log=" TensorBoard, wandb,tensorboard").log == "tensorboard,wandb"
    with pytest.raises(ConfigError, match="mlflow is not one of them"):
        tiny_train_config(log="tensorboard,mlflow")
    assert "log" in tiny_train_config().resumable_fields()


def test_a_tracker_that_is_not_installed_is_refused_before_the_run_starts(tmp_path, monkeypatch, capsys):
    real = sinks.importlib.util.find_spec
    monkeypatch.setattr(sinks.importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a))
    out = tmp_path / "run"
    code = main(["train", "vae", *vae_flags(TINY_VAE), "--dataset", "emoji", "--log", "wandb", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "wandb is not installed in this Python; pip install 'genlab[wandb]'" in capsys.readouterr().err
    assert sinks.available() == ["tensorboard", "trackio"]


def test_wandb_stays_offline_unless_this_machine_is_logged_in(tmp_path):
    home = {"HOME": str(tmp_path)}
    assert trackers.wandb_mode(home) == "offline"
    assert trackers.wandb_mode({**home, "WANDB_API_KEY": "x" * 40}) == "online"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert trackers.wandb_mode(home) == "online"
    assert trackers.wandb_mode({**home, "WANDB_BASE_URL": "https://wandb.example.org"}) == "offline"
    (tmp_path / ".netrc").write_text("machine api.forge.coreweave.com\n  login user\n  password " + "k" * 40 + "\n")
    assert trackers.wandb_mode(home) == "online"  # wandb 0.31's own name for its cloud
    assert trackers.wandb_mode({**home, "WANDB_MODE": "disabled"}) is None  # the user's own choice: W&B reads it


SPY = """
import atexit, json, socket, sys
reached = []

def spy(*args, **kwargs):
    reached.append(repr(args[:2]))
    raise OSError("no network in this test")

socket.getaddrinfo = spy
where = sys.argv[1]
atexit.register(lambda: open(where, "w").write(json.dumps(reached)))  # registered first: runs last
sys.argv = ["genlab", *sys.argv[2:]]
import runpy
runpy.run_module("genlab", run_name="__main__")
"""


@pytest.mark.slow
def test_nothing_leaves_the_machine_by_default(tmp_path):
    """A run that logs to all three trackers looks up no host name, to its process's very end. (W&B 0.31 asks
    its server whether it takes telemetry, even offline, when the process exits; genlab turns that off.
    wandb-core, a Go process, was checked with strace -f: docs/cli.md.)"""
    out, lookups = RunDir(tmp_path / "quiet"), tmp_path / "lookups.json"
    args = ["train", "vae", *vae_flags(TINY_VAE), "--dataset", "emoji", "--image-size", "16", "--batch-size", "32"]
    args += ["--max-steps", "6", "--eval-every", "6", "--eval-batches", "1", "--sample-n", "4", "--device", "cpu"]
    args += ["--log", "tensorboard,wandb,trackio", "--out", str(out.path)]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    cmd = [sys.executable, "-c", SPY, str(lookups), *args]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(w["error"] is None for w in out.info().trackers.values())
    assert json.loads(lookups.read_text()) == []


# -- a run, read back -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_row_grid_and_the_config_reach_all_three_trackers(tmp_path):
    run = RunDir(tmp_path / "all-three")
    assert Trainer(tiny_train_config(log="tensorboard,wandb,trackio"), run.path).fit() == "finished"
    loss, test_bpd = steps_and_values(run, "train", "loss"), steps_and_values(run, "eval", "test_bpd")
    assert [s for s, _ in loss] == [3, 6, 9, 12] and [s for s, _ in test_bpd] == [6, 12]

    tb = tensorboard(run.path / "tensorboard")
    close(tb_series(tb, "train/loss"), loss)
    close(tb_series(tb, "test/bpd"), test_bpd)
    assert [i.step for i in tb.Images("samples")] == [6, 12] and [i.step for i in tb.Images("reconstructions")] == [
        6,
        12,
    ]
    hp = tb_hparams(tb)
    assert hp["lr"] == 1e-3 and hp["model"] == "vae" and hp["model_config.latent_dim"] == 4 and hp["log"] != ""

    wb = wandb_rows(run)
    assert len(list((run.path / "wandb").glob("offline-run-*"))) == 1  # offline: nothing was sent anywhere
    close(wandb_series(wb, "train/loss"), loss)
    close(wandb_series(wb, "test/bpd"), test_bpd)
    assert [h["step"]["num"] for h in wb if "samples.path" in h["item"]] == [6, 12]

    tk = trackio_rows(run)
    close(trackio_series(tk, "train/loss"), loss)
    close(trackio_series(tk, "test/bpd"), test_bpd)
    assert [r["step"] for r in tk if "samples" in r] == [6, 12]
    from trackio import SQLiteStorage

    assert (
        SQLiteStorage.get_run_config(trackers.PROJECT, sinks.run_id("all-three", run.info().created_at))["batch_size"]
        == 32
    )

    where = run.info().trackers
    assert set(where) == {"tensorboard", "wandb", "trackio"} and all(w["error"] is None for w in where.values())
    assert where["tensorboard"]["where"] == f"tensorboard --logdir {run.path / 'tensorboard'}"


@pytest.mark.slow
def test_a_resumed_run_continues_each_series_without_a_step_twice(tmp_path, monkeypatch):
    """Killed at step 9 (after its row, three steps past the step-6 checkpoint), then resumed: every tracker
    holds steps 3, 6, 9, 12 once each, with the values of metrics.jsonl."""
    run = RunDir(tmp_path / "resumed")
    cfg = tiny_train_config(log="tensorboard,wandb,trackio")
    at_step = Trainer.at_step

    def crash_at_9(self, state, skip_fid=False):
        if state.step == 9:
            raise RuntimeError("the machine went away")
        return at_step(self, state, skip_fid)

    monkeypatch.setattr(Trainer, "at_step", crash_at_9)
    assert Trainer(cfg, run.path).fit() == "failed"
    assert [r.step for r in run.read_metrics() if r.kind == "train"] == [3, 6, 9]
    monkeypatch.setattr(Trainer, "at_step", at_step)
    assert Trainer(cfg, run.path, resume=True).fit() == "finished"
    loss, test_bpd = steps_and_values(run, "train", "loss"), steps_and_values(run, "eval", "test_bpd")
    assert [s for s, _ in loss] == [3, 6, 9, 12]

    tb = tensorboard(run.path / "tensorboard")  # TensorBoard purged the first attempt's step 9 (purge_step=7)
    close(tb_series(tb, "train/loss"), loss)
    close(tb_series(tb, "test/bpd"), test_bpd)
    wb = wandb_rows(run)  # two attempts, one W&B run id: the second skipped the step the first holds
    assert len(list((run.path / "wandb").glob("offline-run-*"))) == 2
    close(wandb_series(wb, "train/loss"), loss)
    close(wandb_series(wb, "test/bpd"), test_bpd)
    tk = trackio_rows(run)
    close(trackio_series(tk, "train/loss"), loss)
    close(trackio_series(tk, "test/bpd"), test_bpd)


@pytest.mark.slow
def test_a_tracker_added_on_resume_gets_the_whole_run(tmp_path):
    run = RunDir(tmp_path / "added")
    assert Trainer(tiny_train_config(max_steps=6), run.path).fit() == "finished"
    cfg = tiny_train_config(max_steps=12, log="tensorboard,wandb,trackio")
    assert Trainer(cfg, run.path, resume=True).fit() == "finished"
    loss, test_bpd = steps_and_values(run, "train", "loss"), steps_and_values(run, "eval", "test_bpd")
    tb = tensorboard(run.path / "tensorboard")
    close(tb_series(tb, "train/loss"), loss)
    assert [i.step for i in tb.Images("samples")] == [6, 12]  # the first attempt's grid too, from samples/
    wb = wandb_rows(run)
    close(wandb_series(wb, "test/bpd"), test_bpd)
    close(trackio_series(trackio_rows(run), "train/loss"), loss)


@pytest.mark.slow
def test_a_run_killed_outright_loses_nothing_in_its_trackers(tmp_path):
    """SIGKILL: W&B's service drops what it had not yet written to its file, the trainer flushes nothing.
    The resumed run fills each tracker from metrics.jsonl up to its checkpoint, then goes on."""
    run = RunDir(tmp_path / "killed")
    args = ["train", "vae", *vae_flags(TINY_VAE), "--dataset", "emoji", "--image-size", "16", "--batch-size", "32"]
    args += ["--log-every", "3", "--eval-every", "12", "--eval-batches", "1", "--sample-n", "4", "--device", "cpu"]
    args += ["--no-amp", "--log", "tensorboard,wandb,trackio", "--out", str(run.path)]
    # its own W&B service, as from a shell (this process's, which earlier tests started, is in WANDB_SERVICE)
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    proc = subprocess.Popen([sys.executable, "-m", "genlab", *args, "--max-steps", "100000"], cwd=ROOT, env=env)
    try:
        past = lambda: run.has_checkpoint() and max((r.step for r in run.read_metrics()), default=0) > 30
        wait_until(past, 120, "rows past the first checkpoint")
    finally:
        proc.kill()
        proc.wait(timeout=30)
    resume = [sys.executable, "-m", "genlab", "train", "--resume", str(run.path), "--max-steps", "48"]
    r = subprocess.run(resume, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    loss, test_bpd = steps_and_values(run, "train", "loss"), steps_and_values(run, "eval", "test_bpd")
    assert [s for s, _ in loss] == list(range(3, 49, 3))
    close(tb_series(tensorboard(run.path / "tensorboard"), "train/loss"), loss)
    wb = wandb_rows(run)
    close(wandb_series(wb, "train/loss"), loss)
    close(wandb_series(wb, "test/bpd"), test_bpd)
    close(trackio_series(trackio_rows(run), "train/loss"), loss)


class Broken(trackers.Tracker):
    """A tracker that raises on every call, as a full disk or a dead server would."""

    name = "tensorboard"
    calls = 0

    def where(self) -> str:
        return "nowhere"

    def scalars(self, *args):
        Broken.calls += 1
        raise OSError(28, "No space left on device")

    images = flush = close = scalars


def test_a_tracker_that_raises_on_every_write_is_said_once_and_the_run_finishes(tmp_path, monkeypatch, capsys):
    plain = RunDir(tmp_path / "plain")
    assert Trainer(tiny_train_config(), plain.path).fit() == "finished"
    monkeypatch.setattr(sinks, "open_tracker", lambda name, run: Broken())
    Broken.calls = 0
    run = RunDir(tmp_path / "broken")
    assert Trainer(tiny_train_config(log="tensorboard"), run.path).fit() == "finished"
    # the record is whole: the same rows and values as a run that logged nowhere else
    strip = lambda r: (r.kind, r.step, r.metrics)
    assert list(map(strip, run.read_metrics())) == list(map(strip, plain.read_metrics()))
    assert run.has_checkpoint() and run.best() is not None
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: tensorboard failed to write (OSError: [Errno 28] No space left on device) at step 3; the run goes "
        f"on without it and metrics.jsonl keeps every row: python -m genlab export-logs {run.path} --to "
        "tensorboard DIR replays it"
    ]
    assert run.info().trackers["tensorboard"]["error"] == warnings[0].removeprefix("warning: ")
    assert Broken.calls == 2  # the failed write, and the close that follows it: never again


def test_a_tracker_that_cannot_start_is_said_once_and_the_run_finishes(tmp_path, monkeypatch, capsys):
    def cannot(name, run):
        raise RuntimeError("wandb-core did not start")

    monkeypatch.setattr(sinks, "open_tracker", cannot)
    run = RunDir(tmp_path / "r")
    assert Trainer(tiny_train_config(log="wandb"), run.path).fit() == "finished"
    assert (
        run.info()
        .trackers["wandb"]["error"]
        .startswith("wandb could not start (RuntimeError: wandb-core did not start) at step 0; the run goes on")
    )
    assert capsys.readouterr().err.count("warning:") == 1


# -- export-logs ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_export_logs_replays_a_shipped_checkpoint_into_tensorboard_once(tmp_path, capsys):
    rows = RunDir(SHIPPED).read_metrics()
    for _ in range(2):  # replayed twice into the same folder: still one series (purge_step=0)
        assert main(["export-logs", str(SHIPPED), "--to", "tensorboard", str(tmp_path)]) == 0
    assert f"tensorboard --logdir {tmp_path / 'realnvp-mnist-32'}" in capsys.readouterr().out
    tb = tensorboard(tmp_path / "realnvp-mnist-32")
    evals = [(r.step, r.value("test_bpd")) for r in rows if r.kind == "eval"]
    close(tb_series(tb, "test/bpd"), evals)
    assert len(tb_series(tb, "train/bpd")) == len([r for r in rows if r.kind == "train"])
    (grid,) = tb.Images("samples")  # the folder's samples.png, at its run's last step
    assert grid.step == rows[-1].step and grid.width > 100
    assert tb_hparams(tb)["model_config.num_scales"] == 4


def test_fid_reaches_tensorboard_under_a_name_that_carries_k(tmp_path):
    run = tmp_path / "with-fid"
    run.mkdir()
    t = {"epoch": 1.0, "time": 1.0, "timestamp": 1.0}
    rows = [{"kind": "train", "step": s, "bpd": 6.0 - s / 100, "images_per_s": 10.0, "lr": 1e-3, **t} for s in (10, 20)]
    rows += [{"kind": "fid", "step": 10, "fid": 210.0, "fid_samples": 500, **t}]
    rows += [{"kind": "fid", "step": 20, "fid": 190.0, "fid_samples": 1000, **t}]
    rows += [{"kind": "fid", "step": 20, "fid": float("nan"), "fid_samples": 2000, **t}]  # could not be computed
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["export-logs", str(run), "--to", "tensorboard", str(tmp_path / "tb")]) == 0
    tb = tensorboard(tmp_path / "tb" / "with-fid")
    assert tb_series(tb, "fid/FID@500") == [(10, 210.0)] and tb_series(tb, "fid/FID@1000") == [(20, 190.0)]
    assert "fid/FID@2000" not in tb.Tags()["scalars"]


def test_export_logs_says_what_is_wrong_in_one_sentence(tmp_path, capsys):
    assert main(["export-logs", str(tmp_path), "--to", "tensorboard", str(tmp_path / "tb")]) == 2
    assert "has no metrics.jsonl rows to export" in capsys.readouterr().err
    assert main(["export-logs", str(tmp_path / "nowhere"), "--to", "tensorboard", str(tmp_path / "tb")]) == 2
    assert "nowhere is not a folder" in capsys.readouterr().err
    # never into the folder it reads: a shipped checkpoint stays as it shipped
    assert main(["export-logs", str(SHIPPED), "--to", "tensorboard"]) == 2
    assert "--to tensorboard needs the folder to write into" in capsys.readouterr().err
    assert main(["export-logs", str(SHIPPED), "--to", "trackio", str(tmp_path)]) == 2
    assert "trackio writes its own store (TRACKIO_DIR): give no folder" in capsys.readouterr().err
    assert not (SHIPPED / "tensorboard").exists() and not (SHIPPED / "wandb").exists()
    assert main(["export-logs", str(SHIPPED), "--to", "mlflow"]) == 2
    assert "--to takes tensorboard, wandb, trackio; 'mlflow' is not one of them" in capsys.readouterr().err


@pytest.mark.slow
def test_export_logs_to_wandb_and_trackio_twice_leaves_one_series(tmp_path, capsys):
    rows = RunDir(SHIPPED).read_metrics()
    bpd = [(r.step, r.value("test_bpd")) for r in rows if r.kind == "eval"]
    for _ in range(2):
        assert main(["export-logs", str(SHIPPED), "--to", "wandb", str(tmp_path)]) == 0
        assert main(["export-logs", str(SHIPPED), "--to", "TrackIO"]) == 0
    attempts = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(attempts) == 1  # the second export found W&B holding every step: no empty attempt
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{SHIPPED} -> wandb: ")]
    assert len(said) == 2 and all(f"offline: wandb leet {attempts[0]} " in line for line in said)
    close(wandb_series(trackers.wandb_history(attempts[0]), "test/bpd"), bpd)
    close(trackio_series(trackio_rows(RunDir(SHIPPED)), "test/bpd"), bpd)


@pytest.mark.slow
def test_two_runs_that_share_a_folder_name_are_two_runs_in_the_trackers(tmp_path):
    """A run deleted and started again with the same --out, or two runs/x in two folders: never one series."""
    first, second = RunDir(tmp_path / "a" / "same"), RunDir(tmp_path / "b" / "same")
    assert Trainer(tiny_train_config(log="trackio"), first.path).fit() == "finished"
    assert Trainer(tiny_train_config(log="trackio", seed=7), second.path).fit() == "finished"
    for run in (first, second):
        close(trackio_series(trackio_rows(run), "train/loss"), steps_and_values(run, "train", "loss"))


# -- torchrun --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_under_torchrun_only_rank_0_logs(tmp_path):
    out = RunDir(tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "genlab"]
    args = ["train", "vae", "--batch-size", "32", *vae_flags(TINY_VAE), "--dataset", "emoji", "--image-size", "16"]
    args += ["--max-steps", "6", "--log-every", "3", "--eval-every", "6", "--eval-batches", "2", "--sample-n", "4"]
    args += ["--device", "cpu", "--log-to", "tensorboard", "--out", str(out.path)]  # torchrun's parser takes --log
    r = subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((out.path / "tensorboard").glob("events.out.tfevents.*"))) == 1
    close(tb_series(tensorboard(out.path / "tensorboard"), "train/loss"), steps_and_values(out, "train", "loss"))
    assert json.loads(out.run_json.read_text())["processes"] == 2


@pytest.mark.slow
def test_tensorboard_itself_serves_the_runs_bits_per_dim_and_grids_on_127_0_0_1(tmp_path):
    import urllib.request

    from appserver import free_port

    run = RunDir(tmp_path / "served")
    assert Trainer(tiny_train_config(log="tensorboard"), run.path).fit() == "finished"
    port = free_port()
    exe = Path(sys.executable).with_name("tensorboard")
    cmd = [str(exe), "--logdir", str(run.path / "tensorboard"), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--load_fast", "false"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(path: str):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return None

    try:
        scalars = wait_until(lambda: get("/data/plugin/scalars/tags"), 120, "TensorBoard to list the run's scalars")
        assert {"train/bpd", "test/bpd", "train/lr"} <= set(scalars["."])
        points = get("/data/plugin/scalars/scalars?run=.&tag=test/bpd")
        assert [p[1] for p in points] == [6, 12]  # [wall time, step, value]
        assert set(get("/data/plugin/images/tags")["."]) == {"samples", "reconstructions"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
