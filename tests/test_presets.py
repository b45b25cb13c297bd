"""Presets: one table of recipes (genlab.recipes) serves `make checkpoints`, the Train form and
`genlab train --preset`; and the CLI changes that came with them (runs, sample, a mistyped path)."""

import json

import pytest
from PIL import Image

from genlab.cli import main, with_preset
from genlab.recipes import RECIPES, SHIPPED, fastest, recipe
from genlab.runs.rundir import RunDir


def test_a_preset_is_its_recipes_command_line_and_options_after_it_override():
    r = recipe("vae-emoji-32")
    argv = with_preset(["train", "--preset", "vae-emoji-32", "--max-steps", "300", "--out", "x"])
    assert "--eval-every" in r.train and "--eval-every" not in r.preset_args  # a preset's cadence follows its length
    assert argv[: len(r.preset_args) + 1] == ["train", *r.preset_args]
    assert argv[-4:] == ["--max-steps", "300", "--out", "x"]
    assert with_preset(["train", "--preset=vae-emoji-32"])[: len(r.preset_args) + 1] == ["train", *r.preset_args]
    assert with_preset(["runs"]) == ["runs"]
    with pytest.raises(ValueError, match="no recipe .preset. called 'nope'; there are vae-mnist-32"):
        with_preset(["train", "--preset", "nope"])


def test_every_recipe_parses_to_a_config_with_a_title():
    for r in RECIPES:
        cfg = r.config()
        assert cfg.model in r.name and cfg.max_steps and r.title
    assert fastest() in SHIPPED


def test_recipes_state_what_they_measured_from_the_shipped_checkpoints():
    r = recipe("vae-emoji-32")
    m = r.measured()
    assert m["wall_seconds"] > 0 and m["test_bpd"] > 0
    assert r.expected_seconds(steps=r.config().max_steps // 2) == pytest.approx(m["wall_seconds"] / 2)
    assert r.bpd_ceiling() == pytest.approx(1.1 * m["test_bpd"])
    assert fastest().expected_seconds() == min(x.expected_seconds() for x in SHIPPED)


def test_recipes_without_their_checkpoint_measure_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(tmp_path))
    (tmp_path / "vae-emoji-32").mkdir()
    (tmp_path / "vae-emoji-32" / "metrics.json").write_text('{"test_bpd": "x", "train": [1]}')  # hostile
    assert recipe("vae-emoji-32").measured() == {} and recipe("vae-emoji-32").bpd_ceiling() is None
    assert fastest() == SHIPPED[0]


def test_train_with_a_preset_records_it_and_trains_its_config(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "vae-emoji-32", "--max-steps", "3", "--image-size", "16", "--latent-dim", "2"]
    args += ["--width", "4", "--max-width", "8", "--device", "cpu", "--no-amp", "--out", str(out)]
    assert main(args) == 0
    info = RunDir(out).info()
    assert info.preset == "vae-emoji-32" and info.status == "finished"
    cfg, preset = info.config, recipe("vae-emoji-32").config()
    assert (cfg.dataset, cfg.batch_size, cfg.hflip) == (preset.dataset, preset.batch_size, preset.hflip)
    assert cfg.model_config["beta"] == preset.model_config["beta"] > 1  # the recipe's model options too
    assert (cfg.max_steps, cfg.model_config["latent_dim"]) == (3, 2)  # overridden
    assert main(["train", "--resume", str(out), "--preset", "vae-emoji-32"]) == 2
    assert "keeps its model" in capsys.readouterr().err


def test_runs_lists_the_runs_folder_of_genlab_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path / "elsewhere"))
    run = tmp_path / "elsewhere" / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "finished", "config": {"model": "vae", "dataset": "emoji"}}))
    monkeypatch.chdir(tmp_path)  # no ./runs here
    assert main(["runs"]) == 0
    assert "r1" in capsys.readouterr().out
    assert main(["runs", str(tmp_path / "none")]) == 0
    assert "no runs under" in capsys.readouterr().out


def test_sample_uses_the_card_temperature_and_scales_the_grid(tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["sample", "checkpoints/vae-emoji-32", "--n", "4", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    t = recipe("vae-emoji-32").temperature
    assert f"T={t:g}" in said and "2x" in said  # the card's temperature; 32-pixel images drawn at 64
    with Image.open(out) as im:
        assert im.size == (2 * (2 * 33 + 1), 2 * (2 * 33 + 1))
    assert main(["sample", "checkpoints/vae-emoji-32", "--n", "4", "--scale", "3", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.size == (3 * (2 * 33 + 1),) * 2
    with pytest.raises(SystemExit) as refused:  # argparse refuses it, naming the bounds
        main(["sample", "checkpoints/vae-emoji-32", "--n", "0"])
    assert refused.value.code == 2 and "must be 1 to 1,024, got 0" in capsys.readouterr().err


def test_every_sample_flag_has_help():
    from genlab.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["sample"]
    assert all(a.help for a in sub._actions)


def test_a_mistyped_local_path_is_a_missing_folder_not_a_hub_failure(capsys):
    assert main(["sample", "checkpoints/nope"]) == 2
    err = capsys.readouterr().err
    assert "checkpoints/nope does not exist" in err and "Hub" not in err.split(":", 2)[1]
