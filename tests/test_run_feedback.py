"""What a run tells its user: the evaluation cadence, bounded grids read safely, the best checkpoint,
warnings (short run, batch larger than the data, over-fitting) and a steady speed and ETA."""

import json

import pytest
import torch
from PIL import Image

from conftest import tiny_train_config
from genlab.runs import advice, checkpoint, progress
from genlab.runs.config import DEFAULT_STEPS, TrainConfig, cadence
from genlab.runs.grids import MAX_GRIDS, newest_readable, thin, write_grid
from genlab.runs.records import EvalRow, TrainRow
from genlab.runs.rundir import RunDir
from genlab.runs.summary import summarize
from genlab.runs.trainer import Trainer


def _train(step, ts, ips=100.0, time=None):
    return TrainRow(step=step, epoch=0.0, time=time or step / 10, timestamp=ts, images_per_s=ips)


def _eval(step, bpd):
    return EvalRow(step=step, epoch=0.0, time=0.0, timestamp=0.0, metrics={"test_bpd": bpd})


# -- length and cadence -------------------------------------------------------------------------
def test_a_run_is_measured_in_steps_unless_epochs_are_asked_for():
    assert TrainConfig().max_steps == DEFAULT_STEPS and TrainConfig().epochs is None
    by_epochs = TrainConfig(epochs=3)
    assert by_epochs.max_steps is None and by_epochs.total_steps(steps_per_epoch=7) == 21
    assert TrainConfig(max_steps=50, step_limit=20).total_steps(steps_per_epoch=7) == 20


@pytest.mark.parametrize("total", [1, 10, 30, 99, 300, 1000, 1500, 4000, 5000, 19_000, 10**6])
def test_the_default_cadence_gives_20_to_50_evaluations_of_a_round_number_of_steps(total):
    every = cadence(total)
    assert str(every)[0] in "125" and set(str(every)[1:]) <= {"0"}
    assert min(total, 20) <= total // every <= 50


def test_98_training_images_no_longer_mean_an_evaluation_at_every_step(tmp_path):
    """emoji-faces has 98 training images: one step per epoch at batch 128. The cadence follows the
    run's length instead: 300 steps evaluate every 10, and write at most 2 x 16 PNGs."""
    t = Trainer(tiny_train_config(dataset="emoji-faces", max_steps=300, batch_size=128, eval_every=None), tmp_path)
    t.cfg.log_every = 50
    assert t.fit() == "finished"
    rows = RunDir(tmp_path).read_metrics()
    assert [r.step for r in rows if isinstance(r, EvalRow)] == list(range(10, 301, 10))
    pngs = list((tmp_path / "samples").glob("*.png"))
    assert len(pngs) <= 2 * MAX_GRIDS
    assert (tmp_path / "samples" / "step-0000300.png").is_file() and (
        tmp_path / "samples" / "step-0000010.png"
    ).is_file()
    s = summarize(RunDir(tmp_path))
    assert s.images_per_s is not None and s.disk_bytes > 0
    assert any("larger than the training set (98 images)" in w for w in s.warnings)


# -- grids ------------------------------------------------------------------------------------------
def test_thinning_keeps_the_first_and_newest_grid_and_spreads_the_rest(tmp_path):
    for step in range(1, 41):
        (tmp_path / f"step-{step:07d}.png").write_bytes(b"x")
    thin(tmp_path, "step", keep=16)
    steps = sorted(int(p.stem.split("-")[1]) for p in tmp_path.glob("step-*.png"))
    assert len(steps) <= 16 and steps[0] == 1 and steps[-1] == 40
    gaps = {b - a for a, b in zip(steps, steps[1:])}
    assert max(gaps) <= 4 * min(gaps)  # evenly spread, not the last 16


def test_a_half_written_grid_is_passed_over_for_the_one_before(tmp_path):
    write_grid(tmp_path / "step-0000010.png", torch.rand(4, 3, 8, 8), nrow=2)
    full = (tmp_path / "step-0000010.png").read_bytes()
    (tmp_path / "step-0000020.png").write_bytes(full[: len(full) // 2])  # a writer killed half-way
    path, data = newest_readable(tmp_path)
    assert path.name == "step-0000010.png" and data == full
    (tmp_path / "step-0000030.png").write_bytes(b"not a png at all")
    assert newest_readable(tmp_path)[0].name == "step-0000010.png"
    assert newest_readable(tmp_path / "missing") is None


def test_grids_are_written_whole(tmp_path, monkeypatch):
    """A crash while encoding leaves the previous grid and no temporary file."""
    write_grid(tmp_path / "step-0000010.png", torch.rand(4, 3, 8, 8), nrow=2)
    before = (tmp_path / "step-0000010.png").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("genlab.runs.grids.png_of_grid", boom)
    with pytest.raises(OSError):
        write_grid(tmp_path / "step-0000010.png", torch.rand(4, 3, 8, 8), nrow=2)
    assert (tmp_path / "step-0000010.png").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["step-0000010.png"]
    with Image.open(tmp_path / "step-0000010.png") as im:
        assert im.size == (2 * 9 + 1, 2 * 9 + 1)


# -- the best checkpoint ------------------------------------------------------------------------
def test_the_best_weights_by_test_bpd_are_kept_beside_the_last(tmp_path):
    import genlab

    t = Trainer(tiny_train_config(max_steps=12, eval_every=3), tmp_path)
    assert t.fit() == "finished"
    run = RunDir(tmp_path)
    evals = advice.evaluations(run.read_metrics())
    best_step, best_bpd = min(evals, key=lambda e: e[1])
    assert run.best() == (best_step, pytest.approx(best_bpd))
    model = genlab.load_model(run.best_dir)  # a model folder load_model reads, strictly
    assert model.config.image_size == 16
    meta = json.loads((run.best_dir / "metrics.json").read_text())
    assert meta["dataset"] == "emoji" and meta["step"] == best_step


def test_a_resume_drops_best_weights_from_the_steps_it_replays(tmp_path):
    run = RunDir(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    from genlab.models import VAE, VAEConfig

    checkpoint.save_best(run.path, VAE(VAEConfig(image_size=8, latent_dim=2, width=2, max_width=2)), 9, 5.0, "emoji")
    checkpoint.drop_best_after(run.path, 12)
    assert run.best() == (9, 5.0)
    checkpoint.drop_best_after(run.path, 6)
    assert run.best() is None


# -- warnings -----------------------------------------------------------------------------------------
def test_over_fitting_is_said_with_the_numbers_and_the_best_step():
    rows = [_eval(s, b) for s, b in ((60, 5.3), (120, 5.0), (180, 5.4), (240, 5.8), (300, 6.2))]
    w = advice.overfitting(rows, train_images=98)
    assert w.startswith("Over-fitting: test bits/dim rose from 5.00 to 6.20 since step 120")
    assert "best checkpoint is step 120" in w and "98 training images" in w
    assert advice.overfitting(rows[:4]) is None  # two evaluations worse: not yet
    noisy = [_eval(s, b) for s, b in ((10, 5.0), (20, 5.005), (30, 5.004), (40, 5.006))]
    assert advice.overfitting(noisy) is None  # within evaluation noise
    assert advice.overfitting([_eval(10, 5.0), _eval(20, 4.0)]) is None


def test_short_runs_and_oversized_batches_are_warned_about():
    assert "only 10 steps" in advice.short_run(10)
    assert advice.short_run(100) is None and advice.short_run(None) is None
    assert "(128) is larger than the training set (98 images)" in advice.batch_exceeds_data(128, 98)
    assert advice.batch_exceeds_data(32, 98) is None


def test_a_ten_step_run_from_the_library_is_summarised_with_the_short_run_warning(tmp_path):
    assert Trainer(tiny_train_config(max_steps=10, eval_every=None), tmp_path).fit() == "finished"
    s = summarize(RunDir(tmp_path))
    assert any("only 10 steps" in w for w in s.warnings) and s.eta_s is None


# -- speed and ETA -------------------------------------------------------------------------------
def test_the_speed_is_smoothed_while_training_and_a_mean_once_finished():
    rows = [_train(10 * i, float(i), ips) for i, ips in enumerate((100, 300, 100, 300, 100), start=1)]
    smooth = progress.smoothed_speed(rows)
    assert 100 < smooth < 300
    # 50 steps of 32 images in 5 s of training
    assert progress.mean_speed(rows, images_per_step=32) == pytest.approx(50 * 32 / 5.0)


def test_the_eta_is_the_wall_clock_rate_including_evaluations():
    # 10 steps per row, a row every 2 s of wall clock (training alone would say 1 s): 0.2 s per step
    rows = [_train(10 * i, 1000.0 + 2 * i) for i in range(1, 11)]
    assert progress.eta_seconds(rows, total_steps=200, images_per_step=1) == pytest.approx(100 * 0.2)
    # a resume after an hour: only the rows since then count
    rows += [_train(100 + 10 * i, 5000.0 + 4 * i) for i in range(1, 4)]
    assert progress.eta_seconds(rows, total_steps=230, images_per_step=1) == pytest.approx(100 * 0.4)
    assert progress.eta_seconds(rows, total_steps=130, images_per_step=1) is None  # done
