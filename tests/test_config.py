"""One declaration per setting (genlab.config, genlab.runs.config): the CLI's flags, validation, resume
overrides and the treatment of unknown keys all come from the dataclass fields."""

import dataclasses
import json

import pytest

from conftest import TINY_VAE, tiny_train_config, vae_flags
from genlab.cli import build_parser, main
from genlab.config import ConfigError
from genlab.models import CheckpointError, load_model
from genlab.runs.config import TrainConfig
from genlab.runs.rundir import RunDir


def tiny(**kw):
    return tiny_train_config(**{"max_steps": 6, "batch_size": 16, "eval_batches": 1, **kw})


def test_every_field_is_a_flag_with_its_help():
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("flag", True):
            assert "--" + f.name.replace("_", "-") in help_text, f.name
    assert "--no-amp" in help_text and "Adam learning rate" in help_text and "the global batch" in help_text


@pytest.mark.parametrize(
    "args,message",
    [
        (["--batch-size", "0"], "batch_size must be at least 1"),
        (["--image-size", "48"], "power of two"),
        (["--lr", "-1"], "lr must be greater than 0"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--latent-dim", "0"], "latent_dim must be at least 1"),
    ],
)
def test_invalid_settings_are_refused_before_anything_is_written(tmp_path, capsys, args, message):
    assert main(["train", "vae", *args, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_resume_applies_every_resumable_override_and_refuses_the_rest_by_name():
    cfg = tiny()
    changed = {
        "epochs": 3,
        "max_steps": 9,
        "max_minutes": 1.5,
        "step_limit": 7,
        "lr": 3e-4,
        "lr_schedule": "cosine",
        "warmup_steps": 10,
        "decay_steps": 50,
        "device": "auto",
        "grad_clip": 0.0,
        "log_every": 2,
        "eval_every": 4,
        "checkpoint_every": 2,
        "eval_batches": 2,
        "sample_n": 9,
        "max_nonfinite": 3,
        "amp": False,
        "fid_every": 5,
        "fid_samples": 50,
        "compile": True,
        "ema": 0.99,
        "side_work_counts": True,
        "log": "tensorboard",
    }
    assert set(changed) == TrainConfig.resumable_fields()
    for name, value in changed.items():
        assert getattr(cfg.resumed_with({name: value}), name) == value, name
    assert cfg.resumed_with({"epochs": 3}).max_steps is None  # a new epoch count replaces the step budget
    fixed = {
        "dataset": "mnist",
        "image_size": 32,
        "batch_size": 8,
        "seed": 1,
        "hflip": True,
        "fid_ref_n": 50,
        "model": "realnvp",
        "model_config": {"latent_dim": 8},
    }
    assert set(fixed) | set(changed) == {f.name for f in dataclasses.fields(TrainConfig)}
    for name, value in fixed.items():
        with pytest.raises(ConfigError, match="--" + name.replace("_", "-") + " cannot change when a run is resumed"):
            cfg.resumed_with({name: value})
    assert cfg.resumed_with({"batch_size": cfg.batch_size}) == cfg  # the same value is no change


def test_the_cli_resume_applies_a_new_learning_rate_and_refuses_a_new_batch_size(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "vae",
                "--dataset",
                "emoji",
                "--image-size",
                "16",
                "--max-steps",
                "3",
                "--batch-size",
                "8",
                *vae_flags(TINY_VAE),
                "--log-every",
                "3",
                "--eval-batches",
                "1",
                "--sample-n",
                "4",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    before = (out / "run.json").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--max-steps", "6", "--batch-size", "16", "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size, --seed cannot change when a run is resumed" in err and "Traceback" not in err
    assert (out / "run.json").read_text() == before  # refused before anything was written
    assert main(["train", "--resume", str(out), "--max-steps", "6", "--lr", "0.0002"]) == 0
    run = RunDir(out)
    assert run.config().lr == 0.0002 and run.config().max_steps == 6
    assert [(r.step, r.lr) for r in run.read_metrics() if r.kind == "train"] == [(3, 0.001), (6, 0.0002)]


def test_learning_rate_schedules_have_their_closed_form():
    const = tiny(lr=1e-3)
    assert [const.lr_at(s, 100) for s in (0, 50, 99)] == [1e-3] * 3
    cos = tiny(lr=1e-3, lr_schedule="cosine", warmup_steps=10)
    assert [cos.lr_at(s, 110) for s in range(10)] == pytest.approx([1e-4 * (s + 1) for s in range(10)])
    # after warm-up: 1e-4 + 0.5 * 9e-4 * (1 + cos(pi * p)), p = (step - 10) / 99
    assert cos.lr_at(10, 110) == pytest.approx(1e-3)
    assert cos.lr_at(10 + 99 / 2, 110) == pytest.approx(5.5e-4)
    assert cos.lr_at(10 + 99 / 3, 110) == pytest.approx(1e-4 + 4.5e-4 * 1.5)
    assert cos.lr_at(109, 110) == pytest.approx(1e-4)  # the last step is at the floor, a tenth of the peak
    assert cos.lr_at(500, 110) == pytest.approx(1e-4)  # and it stays there if the run goes on
    lrs = [cos.lr_at(s, 110) for s in range(10, 110)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    # warm-up, stable, decay: the peak holds until the last 40 of 110 steps, then the same cosine over them
    wsd = tiny(lr=1e-3, lr_schedule="cosine", warmup_steps=10, decay_steps=40)
    assert [wsd.lr_at(s, 110) for s in (10, 50, 70)] == [1e-3] * 3
    assert wsd.lr_at(70 + 39 / 2, 110) == pytest.approx(5.5e-4) and wsd.lr_at(109, 110) == pytest.approx(1e-4)
    assert wsd.lr_at(109, 210) == 1e-3  # extended to 210 steps, it decays at its new end
    assert tiny(lr_schedule="cosine", decay_steps=500).lr_at(0, 100) == pytest.approx(1e-3)  # longer than the run
    with pytest.raises(ConfigError, match="lr_schedule must be one of constant, cosine, got 'linear'"):
        tiny(lr_schedule="linear")
    with pytest.raises(ConfigError, match="warmup_steps must be at least 0"):
        tiny(warmup_steps=-1)


def test_a_cosine_run_logs_its_schedule_and_a_resume_continues_it(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--max-steps", "6", "--batch-size", "8", "--log-every", "1", "--eval-batches", "1", "--sample-n", "4"]
    tiny_args = [*vae_flags(TINY_VAE), "--dataset", "emoji", "--image-size", "16"]
    common = [*args, "--lr-schedule", "cosine", "--warmup-steps", "2", "--device", "cpu"]
    assert main(["train", "vae", *tiny_args, *common, "--out", str(out)]) == 0
    run = RunDir(out)
    cfg = run.config()
    assert (cfg.lr_schedule, cfg.warmup_steps) == ("cosine", 2)
    logged = [(r.step, r.lr) for r in run.read_metrics() if r.kind == "train"]
    # a row at step s logs the rate of its last optimizer step, s - 1
    assert logged == [(s, pytest.approx(cfg.lr_at(s - 1, 6))) for s in range(1, 7)]
    assert logged[1][1] == pytest.approx(1e-3) and logged[-1][1] == pytest.approx(1e-4)
    assert main(["train", "--resume", str(out), "--max-steps", "10"]) == 0  # a longer plan: the decay is stretched
    cfg = run.config()
    logged = [(r.step, r.lr) for r in run.read_metrics() if r.kind == "train"]
    assert logged[6:] == [(s, pytest.approx(cfg.lr_at(s - 1, 10))) for s in range(7, 11)]
    assert logged[6][1] > logged[5][1]  # step 6 of 10 is higher on the stretched curve than the old floor
    assert logged[-1][1] == pytest.approx(1e-4)
    capsys.readouterr()


def test_unknown_keys_are_refused_the_same_way_everywhere(tmp_path, tiny_vae):
    with pytest.raises(ConfigError, match=r"has fields \['colour'\] that TrainConfig does not know"):
        TrainConfig.from_dict({**tiny().to_dict(), "colour": "red"})
    tiny_vae.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, "colour": "red"}))
    with pytest.raises(CheckpointError, match=r"has fields \['colour'\] that VAEConfig does not know"):
        load_model(tmp_path / "m")
    run = RunDir(tmp_path / "run")
    run.create(tiny())
    raw = json.loads(run.run_json.read_text())
    run.run_json.write_text(json.dumps({**raw, "colour": "red"}))
    with pytest.raises(ConfigError, match=r"has fields \['colour'\] that RunInfo does not know"):
        run.info()
    run.run_json.write_text(json.dumps({**raw, "config": {**raw["config"], "colour": "red"}}))
    with pytest.raises(ConfigError, match=r"has fields \['colour'\] that TrainConfig does not know"):
        run.config()
