"""Model folders (genlab.export), the shipped checkpoints and their recipes (genlab.recipes)."""

import json
from pathlib import Path

import pytest
import torch

import genlab
from genlab.cli import build_parser, main
from genlab.device import precision
from genlab.export import card_text, export_model, model_card, read_metrics
from genlab.recipes import RECIPES, SHIPPED
from genlab.runs.config import TrainConfig, config_from_argv, resume_options
from genlab.runs.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--image-size", "8", "--batch-size", "8", "--eval-batches", "1", "--sample-n", "4"]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert (
        main(
            [
                "train",
                "vae",
                "--dataset",
                "emoji",
                "--max-steps",
                "3",
                "--latent-dim",
                "2",
                "--width",
                "2",
                "--max-width",
                "4",
                *TINY,
                "--out",
                str(root / "vae"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "realnvp",
                "--dataset",
                "mnist",
                "--max-steps",
                "2",
                "--num-blocks",
                "1",
                "--features",
                "4",
                "--num-scales",
                "2",
                *TINY,
                "--out",
                str(root / "flow"),
            ]
        )
        == 0
    )
    return root


def test_export_computes_its_figures_and_loads_back_identically(tiny_runs, tmp_path, monkeypatch):
    from genlab.data import load_dataset
    from genlab.metrics.likelihood import average_metrics, nll_bound_bpd

    monkeypatch.setenv("GENLAB_FID_RANDOM_WEIGHTS", "1")
    out = export_model(
        tiny_runs / "vae",
        tmp_path / "m",
        name="tiny",
        temperature=0.5,
        fid_samples=20,
        fid_ref_n=30,
        eval_n=40,
        iwae_n=25,
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "metrics.json",
        "metrics.jsonl",
        "model.safetensors",
        "run.json",
        "samples.png",
    ]
    m = read_metrics(out)
    model = genlab.load_model(out)
    test = load_dataset("emoji", 8).test
    # the figures are the library's own evaluations, recomputed independently here
    assert m["test_bpd"] == pytest.approx(average_metrics(model, test, 64, 40)["bpd"], rel=1e-6)
    assert m["iwae_k100_bpd"] == pytest.approx(nll_bound_bpd(model, test, 100, max_images=25), rel=1e-6)
    assert m["iwae_images"] == 25 and m["elbo_bpd_iwae_images"] == pytest.approx(
        average_metrics(model, test, 64, 25)["bpd"], rel=1e-6
    )
    assert m["test_images"] == 40 and m["fid_samples"] == 20 and "RANDOM WEIGHTS" in m["fid_weights"]
    assert m["fid_reference"] == "emoji train split, 30 images" and m["fid"] > 0
    assert m["samples"]["temperature"] == 0.5 and m["train"]["steps"] == 3 and m["dataset"] == "emoji"
    # the folder is a model: identical weights and samples to the run's checkpoint
    run_model = genlab.load_model(tiny_runs / "vae")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), run_model.state_dict().values()))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(model.sample(4, 0.5, g1), run_model.sample(4, 0.5, g2))
    from PIL import Image

    assert Image.open(out / "samples.png").size == (8 * 8 + 9, 8 * 8 + 9)  # 8×8 grid of 8×8 images, 1 px padding
    text = card_text(out)
    assert "# tiny: a genlab VAE at 8×8 trained on Twemoji" in text and "samples.png" not in text
    assert "python -m genlab train vae" in text and "FID@20" in text
    n = torch.get_num_threads()  # the runs trained in this process: the card says how many CPU threads
    prec = precision(torch.device("cpu"), RunDir(tiny_runs / "vae").config().amp)  # what its steps computed in
    assert m["train"]["threads"] == n and m["train"]["precision"] == prec
    assert f"on `cpu` with {n} thread{'s' if n != 1 else ''} in {prec} (median" in text


def test_flow_export_without_evaluation_takes_the_runs_figures(tiny_runs, tmp_path):
    out = export_model(tiny_runs / "flow", tmp_path / "f", evaluate=False)
    m = read_metrics(out)
    last_eval = [r for r in RunDir(tiny_runs / "flow").read_metrics() if r.kind == "eval"][-1]
    assert m["test_bpd"] == last_eval.metrics["test_bpd"] and "iwae_k100_bpd" not in m and "fid" not in m
    assert m["test_bpd_kind"] == "exact, 1 dequantization" and m["dataset"] == "mnist"
    assert "license: cc-by-sa-3.0" in (out / "README.md").read_text()


def test_a_failed_export_leaves_nothing_half_written(tiny_runs, tmp_path, monkeypatch):
    import genlab.export as ex

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ex, "model_card", boom)
    with pytest.raises(OSError):
        export_model(tiny_runs / "vae", tmp_path / "x", evaluate=False)
    assert not (tmp_path / "x").exists()


def test_the_command_in_a_card_trains_the_same_config(tiny_runs, tmp_path):
    cfg = RunDir(tiny_runs / "vae").config()
    argv = cfg.argv()
    assert argv[:2] == ["train", "vae"]
    assert main([*argv, "--max-steps", "1", "--out", str(tmp_path / "again")]) == 0
    again = RunDir(tmp_path / "again").config()
    assert {**vars(again), "max_steps": cfg.max_steps} == vars(cfg)


# -- the shipped checkpoints ------------------------------------------------------------------------
def test_recipes_are_valid_commands_with_unique_names_and_repo_ids():
    assert len({r.name for r in RECIPES}) == len(RECIPES) == len({r.repo_id for r in RECIPES})
    for r in RECIPES:
        args = build_parser().parse_args(["train", *r.train, "--out", "x"])
        assert args.model in ("vae", "realnvp")
    assert {r.name for r in RECIPES} >= {
        "vae-emoji-64",
        "realnvp-emoji-32",
        "vae-emoji-32",
        "vae-mnist-32",
        "realnvp-mnist-32",
    }
    # what ships is exactly what checkpoints/ holds
    shipped = {p.name for p in (ROOT / "checkpoints").iterdir() if p.is_dir()}
    assert shipped == {r.name for r in SHIPPED}


@pytest.mark.parametrize("recipe", SHIPPED, ids=lambda r: r.name)
def test_each_shipped_checkpoint_is_complete_small_and_what_its_recipe_trains(recipe):
    folder = ROOT / "checkpoints" / recipe.name
    for f in ("config.json", "model.safetensors", "metrics.json", "samples.png", "README.md"):
        assert (folder / f).is_file(), f
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 20 * 2**20
    m = read_metrics(folder)
    assert m["samples"]["temperature"] == recipe.temperature and m["recipe"] == recipe.name
    assert m["test_bpd"] > 0 and m["fid"] > 0 and m["fid_samples"] >= 1000 and m["fid_weights"]
    assert "RANDOM" not in m["fid_weights"]
    if m["model_type"] == "vae":
        assert m["iwae_k100_bpd"] <= m["elbo_bpd_iwae_images"]  # the IWAE bound is tighter than the ELBO
    for key in ("command", "device", "train_seconds", "wall_seconds", "steps"):
        assert m["train"][key], key
    model = genlab.load_model(folder)  # strict
    assert model.config.image_size == int(recipe.name.rsplit("-", 1)[1])
    # the recipe, parsed as `genlab checkpoints` would run it, is the config the checkpoint was trained with
    trained = TrainConfig.from_dict(json.loads((folder / "run.json").read_text())["config"])
    # (runs trained before lengths were in steps by default also say epochs=10, which --max-steps overrides)
    as_trained = {**vars(trained), "epochs": None if trained.max_steps else trained.epochs, "eval_every": None}
    assert vars(recipe.config()) == as_trained  # the preset: the same run, evaluated on the default cadence
    # the card is what genlab writes today from the figures beside it (no stale wording ships)
    card = model_card(
        recipe.name, model.config_dict(), json.loads((folder / "metrics.json").read_text()), recipe.repo_id
    )
    assert (folder / "README.md").read_text() == card
    if recipe.stages:  # made in stages: the card says which, in the order `genlab checkpoints` runs them
        assert m["recipe_stages"].split("\n") == recipe.commands()
        assert all(c in (folder / "README.md").read_text() for c in recipe.commands())


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r.stages], ids=lambda r: r.name)
def test_a_recipe_made_in_stages_ends_with_its_own_configuration(recipe):
    first, *later = recipe.stage_args()
    cfg = config_from_argv(first)
    for args in later:
        cfg = cfg.resumed_with(resume_options(args))
    assert cfg == config_from_argv(recipe.train)


def test_genlab_checkpoints_repeats_every_stage_of_a_recipe_and_says_so_on_the_card(tmp_path, monkeypatch):
    import genlab.recipes as recipes

    tiny = recipes.Recipe(
        "tiny-staged-8",
        ("vae", "--dataset", "emoji", "--max-steps", "4", "--ema", "0.5", "--latent-dim", "2", "--width", "2", *TINY),
        temperature=1.0,
        stages=(
            " ".join(["vae --dataset emoji --max-steps 2 --latent-dim 2 --width 2", *TINY]),
            "--max-steps 4 --ema 0.5",
        ),
    )
    monkeypatch.setattr(recipes, "RECIPES", (tiny,))
    args = ["checkpoints", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "ck"), "--fid-samples", "0"]
    assert main(args) == 0
    run = RunDir(tmp_path / "runs" / "tiny-staged-8")
    assert run.config() == config_from_argv(tiny.train) and run.checkpoint_step() == 4
    card = (tmp_path / "ck" / "tiny-staged-8" / "README.md").read_text()
    assert "made in 2 stages" in card and all(c in card for c in tiny.commands())


def test_genlab_checkpoints_trains_from_scratch_and_exports(tmp_path, monkeypatch):
    import genlab.recipes as recipes

    tiny = recipes.Recipe(
        "tiny-vae-8",
        (
            "vae",
            "--dataset",
            "emoji",
            "--max-steps",
            "2",
            "--latent-dim",
            "2",
            "--width",
            "2",
            "--max-width",
            "4",
            *TINY,
        ),
        temperature=0.5,
    )
    monkeypatch.setattr(recipes, "RECIPES", (tiny,))
    (tmp_path / "runs" / "tiny-vae-8").mkdir(parents=True)
    (tmp_path / "runs" / "tiny-vae-8" / "stale.txt").write_text("from an older attempt")
    assert (
        main(["checkpoints", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "ck"), "--fid-samples", "0"])
        == 0
    )
    assert not (tmp_path / "runs" / "tiny-vae-8" / "stale.txt").exists()  # from scratch
    m = read_metrics(tmp_path / "ck" / "tiny-vae-8")
    assert m["recipe"] == "tiny-vae-8" and m["samples"]["temperature"] == 0.5 and m["train"]["steps"] == 2
    assert "genlab checkpoints tiny-vae-8" in (tmp_path / "ck" / "tiny-vae-8" / "README.md").read_text()
    assert main(["checkpoints", "no-such-model"]) == 2
