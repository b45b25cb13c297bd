"""The command line: datasets, train, sample, and its errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from genlab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_datasets_lists_everything_with_availability(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("emoji", "mnist", "fashion-mnist", "cifar10", "celeba"):
        assert name in out
    assert "CC-BY 4.0" in out
    cifar = next(line for line in out.splitlines() if line.startswith("cifar10"))
    assert " no " in cifar and "internet" in cifar


def test_python_dash_m_genlab_runs():
    r = subprocess.run([sys.executable, "-m", "genlab", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "train" in r.stdout and "sample" in r.stdout


def test_train_then_sample_from_the_run_and_from_the_model_dir(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "vae",
        "--dataset",
        "emoji",
        "--image-size",
        "32",
        "--max-steps",
        "4",
        "--batch-size",
        "16",
        "--latent-dim",
        "8",
        "--width",
        "4",
        "--eval-every",
        "4",
        "--eval-batches",
        "1",
        "--sample-n",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert "finished" in capsys.readouterr().out
    assert main(args) == 2  # never overwrite a run
    assert "already exists" in capsys.readouterr().err
    for src in (out, out / "checkpoint"):
        png = tmp_path / "grid.png"
        cmd = ["sample", str(src), "--n", "6", "--nrow", "3", "--temperature", "0.7", "--out", str(png)]
        assert main([*cmd, "--scale", "1"]) == 0
        with Image.open(png) as im:
            assert im.size == (3 * 33 + 1, 2 * 33 + 1)
        assert main(cmd) == 0  # by default each 32-pixel image is drawn at 64 pixels
        with Image.open(png) as im:
            assert im.size == (2 * (3 * 33 + 1), 2 * (2 * 33 + 1))
    capsys.readouterr()
    assert main(["eval", str(out), "--k", "5", "--n", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "emoji" and result["test_images"] == 8
    assert 0 < result["iwae_k5_bpd"] < 9 and 0 < result["test_bpd"] < 9
    assert main(["eval", str(out / "checkpoint"), "--k", "0"]) == 2  # a bare model dir needs --dataset
    # resume with a larger budget continues the same run
    assert main(["train", "--resume", str(out), "--max-steps", "6"]) == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "vae", "--dataset", "cifar10", "--max-steps", "1"], "cifar10 is not available here: offline"),
        (["train", "vae", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["sample", "/nonexistent/model"], "does not exist"),
        (["train"], "name a model to train"),
        (["train", "--resume", "/nonexistent/run"], "not a run directory"),
        (["sample", str(ROOT / "checkpoints" / "vae-emoji-32"), "--out", "OUT/"], "is a folder; give the PNG file"),
        (["eval", str(ROOT / "checkpoints" / "vae-emoji-32"), "--dataset", "mnist"], "colour channel"),
        (["train", "--preset", "nope"], "there is no recipe (preset) called 'nope'"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, capsys, args, message):
    if args[:2] == ["train", "vae"]:
        args = args + ["--out", str(tmp_path / "r")]
    args = [str(tmp_path / "r") + "/" if a == "OUT/" else a for a in args]
    code = main(args)
    captured = capsys.readouterr()
    assert code != 0
    assert message in captured.err + captured.out
    assert "Traceback" not in captured.err
    assert not (tmp_path / "r").exists()  # a command that could never run writes nothing


def test_runs_lists_status_progress_and_bits_per_dim(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 0 and "no runs" in capsys.readouterr().out
    out = tmp_path / "r1"
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
                "4",
                "--batch-size",
                "8",
                "--latent-dim",
                "4",
                "--width",
                "4",
                "--eval-every",
                "4",
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
    capsys.readouterr()
    assert main(["runs", str(tmp_path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("r1"))
    cells = line.split()
    assert cells[:5] == ["r1", "vae", "emoji", "finished", "4/4"]
    from genlab.runs.rundir import RunDir
    from genlab.runs.summary import summarize

    s = summarize(RunDir(out))
    assert s.progress == 1.0 and s.eta_s is None and 0 < s.test_bpd < 9 and s.fid is None
