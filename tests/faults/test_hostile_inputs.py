"""Faults: what a visitor, a file or a downloaded repo sends cannot break the app, exhaust the machine or
outlive a fix. Each case is refused in one sentence (or listed with its error), and nothing else changes."""

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import png_header, tiny_train_config
from genlab import CheckpointError, load_model
from genlab.catalog import available_models, broken_models
from genlab.hub import forget_pulled, remember_pulled
from genlab.models import VAE, VAEConfig
from genlab.models.sizing import ModelTooLarge, check_model
from genlab.public import PublicModeError, cap_config
from genlab.runs import checkpoint, jobs, queue
from genlab.runs.config import TrainConfig
from genlab.runs.records import RunStatus
from genlab.runs.rundir import RunDir
from genlab.runs.summary import list_runs, summarize
from genlab.runs.trainer import Trainer

pytestmark = pytest.mark.fault
ROOT = Path(__file__).resolve().parents[2]
PAGES = ("home", "sample", "compare", "train", "models")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert Trainer(tiny_train_config(max_steps=6, batch_size=16, eval_batches=1), out).fit() == "finished"
    return out


@pytest.fixture
def model_folder(trained, tmp_path) -> Path:
    """A model folder (config.json, model.safetensors, metrics.json) as a pull leaves one."""
    folder = tmp_path / "pulled"
    shutil.copytree(trained / "checkpoint", folder, ignore=shutil.ignore_patterns("optimizer*", "trainer_state*"))
    (folder / "metrics.json").write_text(json.dumps({"dataset": "emoji", "samples": {"temperature": 0.7}}))
    return folder


def _files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in Path(root).rglob("*") if p.is_file()}


def _cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genlab", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


# -- one pulled repo --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "metrics",
    [
        {"samples": "x"},
        {"samples": {"temperature": "hot"}},
        {"test_bpd": "low"},
        {"fid_samples": -3},
        ["not", "a dict"],
    ],
    ids=["samples-str", "temperature-str", "bpd-str", "count-negative", "list"],
)
def test_a_malformed_pulled_model_is_listed_with_its_error_and_removable(model_folder, metrics, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GENLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path / "runs"))
    (model_folder / "metrics.json").write_text(json.dumps(metrics))
    remember_pulled("evil/repo", model_folder)
    assert "evil/repo" not in [e.label.split()[0] for e in available_models()]
    [bad] = [b for b in broken_models() if b.repo_id == "evil/repo"]
    assert "metrics.json" in bad.error
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
    assert any("evil/repo" in w.value and "metrics.json" in w.value for w in at.warning)
    [remove] = [b for b in at.button if b.label == "Remove"]
    remove.click().run()
    assert not at.exception
    assert not [b for b in broken_models() if b.repo_id == "evil/repo"]
    assert "evil/repo" not in json.loads((tmp_path / "home" / "hub-models.json").read_text())


def test_a_malformed_pulled_models_list_breaks_nothing_and_can_be_reset(monkeypatch, tmp_path):
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path))
    for text in ('["a list"]', '{"../../etc": "/etc"}', '{"org/name": 7}', "{" * 100_000):
        (tmp_path / "hub-models.json").write_text(text)
        assert all(e.source != "hub" for e in available_models())
        [bad] = [b for b in broken_models() if b.source == "hub"]
        assert "hub-models.json" in bad.error and len(bad.error) < 300
        forget_pulled(bad.repo_id)
        assert not [b for b in broken_models() if b.source == "hub"]


def test_a_metrics_json_that_is_too_big_is_refused_unread(model_folder):
    (model_folder / "metrics.json").write_text(json.dumps({"dataset_credit": "x" * 2_000_000}))
    from genlab.export import read_metrics

    with pytest.raises(CheckpointError, match=r"metrics.json is 2,000,\d+ bytes, more than the 1,048,576"):
        read_metrics(model_folder)


# -- sizes before allocations -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "config, sentence",
    [
        ({"latent_dim": 20_000_000}, "latent_dim must be at most 4,096, got 20000000"),
        ({"latent_dim": 10**9}, "latent_dim must be at most 4,096"),
        ({"latent_dim": 4096, "width": 1024, "max_width": 4096, "image_size": 1024}, "parameters, over this app's"),
        ({"image_size": 2**30}, "image_size must be at most 1,024"),
    ],
)
def test_an_oversize_config_is_one_sentence_before_anything_is_allocated(model_folder, config, sentence):
    cfg = json.loads((model_folder / "config.json").read_text())
    (model_folder / "config.json").write_text(json.dumps({**cfg, **config}))
    before = _files(model_folder)
    with pytest.raises(CheckpointError, match=sentence):
        load_model(model_folder)
    done = _cli("sample", str(model_folder), "--out", str(model_folder / "x.png"))
    assert done.returncode == 2 and sentence.split(",")[0] in done.stderr and done.stderr.count("\n") == 1
    assert _files(model_folder) == before


def test_models_over_the_limits_are_refused_by_size_and_by_memory(monkeypatch):
    cfg = VAEConfig(image_size=64, latent_dim=4096, width=1024, max_width=4096)
    with pytest.raises(ModelTooLarge, match=r"needs [\d,]+ parameters, over this app's limit of 200,000,000"):
        check_model(VAE, cfg)
    small = VAEConfig(image_size=64)
    assert check_model(VAE, small, batch=64, training=True) == VAE(small).num_parameters()
    monkeypatch.setenv("GENLAB_MAX_MODEL_BYTES", str(2**28))  # 256 MiB
    with pytest.raises(ModelTooLarge, match=r"training on batches of 4096, needs about [\d.]+ GiB.*MAX_MODEL_BYTES"):
        check_model(VAE, small, batch=4096, training=True)
    monkeypatch.setenv("GENLAB_PUBLIC", "1")
    with pytest.raises(ModelTooLarge, match="GENLAB_PUBLIC_MAX_PARAMS"):
        check_model(VAE, VAEConfig(image_size=64, width=256, max_width=1024))


# -- public mode bounds work --------------------------------------------------------------------------
@pytest.fixture
def public_mode(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("GENLAB_PUBLIC", "1")
    monkeypatch.setenv("GENLAB_RUNS", str(runs))
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return runs


@pytest.mark.parametrize(
    "change, sentence",
    [
        ({"batch_size": 4096}, "the batch size may be at most 256; 4,096 was asked"),
        ({"image_size": 128}, "the image size may be at most 64"),
        ({"fid_every": 1, "fid_samples": 50}, r"steps between FIDs must be at least 200 \(at most 5 per run\)"),
        ({"fid_every": 500, "fid_samples": 5000}, r"FID samples \(K of FID@K\) may be at most 1,000"),
        ({"eval_every": 1}, r"steps between evaluations must be at least 20 \(at most 50 per run\)"),
        ({"checkpoint_every": 2}, "steps between checkpoints must be at least 20"),
    ],
)
def test_public_mode_refuses_work_beyond_its_caps(public_mode, change, sentence):
    cfg = TrainConfig(model="vae", dataset="emoji", **{"image_size": 32, **change})  # 1,000 steps
    with pytest.raises(PublicModeError, match=sentence):
        cap_config(cfg)
    with pytest.raises(PublicModeError, match=sentence):
        jobs.launch(cfg, public_mode)
    assert list(public_mode.iterdir()) == []


def test_public_mode_caps_test_images_and_counts_side_work(public_mode):
    capped = cap_config(TrainConfig(model="vae", dataset="emoji", batch_size=64))
    assert capped.eval_batches == 1000 // 64 and capped.side_work_counts and capped.max_minutes == 10


def test_a_huge_width_from_the_public_form_is_refused_before_anything_is_written(public_mode):
    for options, sentence in (
        ({"features": 12000}, "features must be at most 1,024"),
        ({"features": 1024, "num_blocks": 64}, "GENLAB_PUBLIC_MAX_PARAMS"),
    ):
        with pytest.raises((ModelTooLarge, ValueError), match=sentence):
            jobs.launch(TrainConfig(model="realnvp", dataset="emoji", model_config=options), public_mode)
    assert list(public_mode.iterdir()) == []


def test_evaluations_count_toward_the_minute_cap_when_side_work_counts(tmp_path, monkeypatch):
    slow_eval = Trainer.evaluate

    def evaluate(self):
        threading.Event().wait(0.2)  # an evaluation that takes a fifth of a second
        return slow_eval(self)

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    cfg = tiny_train_config(max_steps=1000, eval_every=1, checkpoint_every=1000, max_minutes=0.01)
    from dataclasses import replace

    run = Trainer(replace(cfg, side_work_counts=True), tmp_path / "run")
    assert run.fit() == "finished"
    # 0.6 s of budget, 0.2 s per evaluation: it ends after a handful of steps, not after 0.6 s of training
    assert max(r.step for r in RunDir(tmp_path / "run").read_metrics()) < 20


# -- the queue cannot wedge -----------------------------------------------------------------------------
def test_a_launch_whose_process_cannot_start_fails_with_the_reason_and_the_queue_moves_on(tmp_path, monkeypatch):
    real_spawn = jobs._spawn

    def no_room(args, run):
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(jobs, "_spawn", no_room)
    cfg = tiny_train_config(max_steps=2)
    with pytest.raises(RuntimeError, match="its training process could not start"):
        jobs.launch(cfg, tmp_path, name="wedged")
    wedged = RunDir(tmp_path / "wedged")
    assert wedged.status() == RunStatus.FAILED and "could not start" in wedged.info().error
    monkeypatch.setattr(jobs, "_spawn", real_spawn)
    later = jobs.launch(cfg, tmp_path, name="later")
    assert not queue._queued_ahead(later)
    jobs.stop(later)


def test_a_queued_run_whose_pid_now_belongs_to_another_program_is_interrupted(trained, tmp_path):
    run = RunDir(tmp_path / "run")
    shutil.copytree(trained, run.path)
    run.update_info(status=RunStatus.QUEUED, pid=os.getpid(), pid_start=1)  # alive, but started at another time
    assert run.status() == RunStatus.INTERRUPTED
    with pytest.raises(RuntimeError, match="not training; there is nothing to stop"):
        jobs.stop(run)
    (run.path / "STOP").mkdir()  # someone made a folder by that name: resume clears it like a file
    run.clear_stop()
    assert not run.stop_file.exists()


# -- one bad run hides nothing ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage",
    ["pid-str", "dataset-list", "status-number", "run-json-folder", "row-step-str", "row-speed-str", "launch-dicts"],
)
def test_one_malformed_run_is_listed_with_its_error_and_the_others_still_show(trained, tmp_path, damage, monkeypatch):
    from streamlit.testing.v1 import AppTest

    good, bad = RunDir(tmp_path / "good"), RunDir(tmp_path / "bad")
    shutil.copytree(trained, good.path)
    shutil.copytree(trained, bad.path)
    info = json.loads(bad.run_json.read_text())
    row = json.loads(bad.metrics_path.read_text().splitlines()[0])
    if damage == "run-json-folder":
        bad.run_json.unlink()
        bad.run_json.mkdir()
        (bad.run_json / "x").touch()
    elif damage.startswith("row-"):
        row.update({"step": "x"} if damage == "row-step-str" else {"images_per_s": "fast"})
        bad.metrics_path.write_text(json.dumps(row) + "\n" + bad.metrics_path.read_text())
    else:
        info.update(
            {"pid-str": {"pid": "x"}, "dataset-list": {"dataset": [1]}, "status-number": {"status": 3}}.get(damage)
            or {"launch": [{"a": 1}]}
        )
        bad.run_json.write_text(json.dumps(info))
    rows = {s.name: s for s in map(summarize, list_runs(tmp_path))}
    assert rows["good"].status == "finished" and rows["good"].error is None
    if damage == "run-json-folder":  # a folder whose run.json is not a file is not a run
        assert "bad" not in rows
    elif not damage.startswith("row-"):
        assert rows["bad"].status == "unknown" and "run.json" in rows["bad"].error
    listing = _cli("runs", str(tmp_path))
    assert listing.returncode == 0 and "good" in listing.stdout and "Traceback" not in listing.stderr
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    for page in ("train", "home", "sample"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, at.exception)


# -- numbers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, sentence",
    [
        (("sample", "checkpoints/vae-emoji-32", "--n", "0"), "argument --n: must be 1 to 1,024, got 0"),
        (("sample", "checkpoints/vae-emoji-32", "--n", "100000"), "argument --n: must be 1 to 1,024, got 100000"),
        (("sample", "checkpoints/vae-emoji-32", "--temperature", "nan"), "must be a finite number, got nan"),
        (("sample", "checkpoints/vae-emoji-32", "--temperature", "inf"), "must be a finite number, got inf"),
        (("sample", "checkpoints/vae-emoji-32", "--seed", "-1"), "argument --seed: must be 0 to 4,294,967,295"),
        (("eval", "checkpoints/vae-emoji-32", "--n", "0"), "argument --n: must be 1 to 10,000,000, got 0"),
        (("eval", "checkpoints/vae-emoji-32", "--batch-size", "0"), "argument --batch-size: must be 1 to 4,096"),
        (("fid", "emoji:train", "emoji:test", "--n", "1"), "argument --n: must be 2 to"),
        (("train", "vae", "--seed", "4611686018427387904"), "seed must be at most 4,294,967,295"),
    ],
)
def test_every_command_bounds_its_numbers(args, sentence, tmp_path):
    done = _cli(*args, "--out", str(tmp_path / "out")) if args[0] in ("sample", "train") else _cli(*args)
    assert done.returncode == 2 and sentence in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


# -- checkpoints and weights ----------------------------------------------------------------------------
def test_loading_while_the_run_swaps_its_checkpoint_never_fails(trained, tmp_path):
    run = RunDir(tmp_path / "run")
    shutil.copytree(trained, run.path)
    model = load_model(run.path)
    opt = torch.optim.Adam(model.parameters())
    done, errors = threading.Event(), []

    def swap():
        while not done.is_set():
            checkpoint.save(run.path, model, opt, {"step": 6})

    writer = threading.Thread(target=swap)
    writer.start()
    try:
        for _ in range(300):
            try:
                load_model(run.path)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                errors.append(f"{type(e).__name__}: {e}")
    finally:
        done.set()
        writer.join()
    assert errors == []


@pytest.mark.parametrize(
    "change, sentence",
    [
        (lambda t: t.double(), r"tensor '.+' is torch.float64, but the model stores it as torch.float32"),
        (lambda t: t.to(torch.int8), r"is torch.int8, but the model stores it as torch.float32"),
        (lambda t: t.bool(), "is torch.bool"),
        (lambda t: torch.full_like(t, float("nan")), r"tensor '.+' holds NaN; these weights cannot sample"),
        (lambda t: torch.full_like(t, float("inf")), "holds infinite values"),
    ],
    ids=["float64", "int8", "bool", "nan", "inf"],
)
def test_weights_of_another_dtype_or_not_finite_are_refused_by_name(model_folder, change, sentence):
    tensors = load_file(str(model_folder / "model.safetensors"))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    save_file({**tensors, name: change(tensors[name]).contiguous()}, str(model_folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=sentence):
        load_model(model_folder)


def test_an_unknown_key_of_two_megabytes_is_not_echoed_whole(model_folder):
    cfg = json.loads((model_folder / "config.json").read_text())
    (model_folder / "config.json").write_text(json.dumps({**cfg, "k" * 900_000: 1}))
    with pytest.raises(CheckpointError) as e:
        load_model(model_folder)
    assert "does not know" in str(e.value) and len(str(e.value)) < 400


# -- found by attacking the above ------------------------------------------------------------------------
def test_a_public_app_never_reads_the_data_set_a_model_records_outside_its_folders(model_folder, public_mode, tmp_path):
    from genlab.catalog import readable_dataset
    from genlab.data import load_dataset

    outside = tmp_path / "outside"
    outside.mkdir()
    for dataset in (f"folder:{outside}", "folder:/", "nosuch"):
        (model_folder / "metrics.json").write_text(json.dumps({"dataset": dataset}))
        assert readable_dataset(dataset) is None
    with pytest.raises(PublicModeError, match="the data folder must lie inside"):
        load_dataset(f"folder:{outside}", 16)


def test_a_samples_png_too_large_to_show_is_never_decoded(model_folder, tmp_path, monkeypatch):
    from PIL import Image
    from streamlit.testing.v1 import AppTest

    from genlab.runs.grids import readable

    grid = model_folder / "samples.png"
    grid.write_bytes(png_header(6000, 6000))  # 36 Mpixel, as its header says, in 60 bytes
    with Image.open(grid) as im:
        assert im.size == (6000, 6000)  # PIL would decode it: only genlab's check keeps it from being decoded
    assert readable(grid) is None
    grid.write_bytes(png_header(30000, 30000))  # 900 Mpixel: PIL's own limit refuses to open it, said as None
    assert readable(grid) is None
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path / "home"))
    remember_pulled("big/grid", model_folder)
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app_pages" / "models.py"), default_timeout=120)
    at.run()
    assert not at.exception


def test_a_grid_that_is_a_fifo_or_a_link_to_a_device_is_skipped_unread(tmp_path):
    """``genlab export-logs`` of a hostile run folder: its grids are read through ``readable``, which must neither
    wait for ever on a FIFO nor read /dev/zero (both say 0 bytes)."""
    import os

    from genlab.runs.grids import grids_on_disk, readable

    samples = tmp_path / "samples"
    samples.mkdir()
    os.mkfifo(samples / "step-0000010.png")
    (samples / "step-0000020.png").symlink_to("/dev/zero")
    assert readable(samples / "step-0000010.png") is None and readable(samples / "step-0000020.png") is None
    assert grids_on_disk(tmp_path, 20) == []


def test_a_metrics_row_whose_step_no_tracker_could_hold_is_skipped():
    from genlab.runs.records import parse_row

    row = {"kind": "train", "epoch": 0.0, "time": 0.0, "timestamp": 0.0, "loss": 1.0}
    assert parse_row(json.dumps({**row, "step": 2**53})).step == 2**53
    assert parse_row(json.dumps({**row, "step": 2**63 + 5})) is None  # past int64: TensorBoard's step overflows


def test_two_runs_with_best_weights_at_the_same_step_open_on_models(trained, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    for name in ("a", "b"):
        run = RunDir(tmp_path / name)
        shutil.copytree(trained, run.path)
        checkpoint.save_best(
            run.path, load_model(run.path), 3, 5.0, "emoji"
        )  # not the checkpoint's step: listed as its own model
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app_pages" / "models.py"), default_timeout=120)
    at.run()
    assert not at.exception


@pytest.mark.parametrize("damage", ["config-list", "total-negative", "metrics-folder", "metrics-binary", "dev-zero"])
def test_damaged_run_files_are_one_entry_not_a_crash(trained, tmp_path, damage):
    run = RunDir(tmp_path / "run")
    shutil.copytree(trained, run.path)
    info = json.loads(run.run_json.read_text())
    if damage in ("config-list", "total-negative"):
        info.update({"config": [1]} if damage == "config-list" else {"total_steps": -5})
        run.run_json.write_text(json.dumps(info))
    elif damage == "metrics-folder":
        run.metrics_path.unlink()
        run.metrics_path.mkdir()
    elif damage == "metrics-binary":
        run.metrics_path.write_bytes(bytes(range(256)) * 100)
    else:
        run.run_json.unlink()
        run.run_json.symlink_to("/dev/zero")  # its size says 0, and it never ends
    s = summarize(run)
    if damage in ("metrics-folder", "metrics-binary"):
        assert s.status == "finished" and s.step == 0
    else:
        assert s.status == "unknown" and "run.json" in s.error and len(s.error) < 300
    listing = _cli("runs", str(tmp_path))
    assert listing.returncode == 0 and "Traceback" not in listing.stderr


@pytest.mark.parametrize(
    "args, sentence",
    [
        (("--device", "cuda"), "error: --device cuda was asked for, but this machine has no CUDA GPU"),
        (("--device", "meta"), "error: --device must be auto, cpu, cuda or cuda:N; got 'meta'"),
    ],
)
def test_a_device_that_is_not_there_is_one_sentence(args, sentence, tmp_path):
    if torch.cuda.is_available() and "cuda" in args:
        pytest.skip("this machine has a GPU")
    done = _cli("sample", "checkpoints/vae-emoji-32", "--out", str(tmp_path / "x.png"), *args)
    assert done.returncode == 2 and done.stderr.startswith(sentence) and done.stderr.count("\n") == 1


def test_eval_on_a_data_set_of_other_channels_is_one_sentence():
    done = _cli("eval", "checkpoints/vae-emoji-32", "--dataset", "mnist", "--n", "8")
    assert done.returncode == 2 and "mnist has 1 colour channel(s) and this model 3" in done.stderr


def test_public_fid_references_are_capped_like_its_samples(public_mode):
    assert cap_config(TrainConfig(model="vae", dataset="emoji", fid_every=500)).fid_ref_n == 1000
