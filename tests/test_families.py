"""A model family that genlab has never heard of, defined only in the tests (``pixel_family.py``):
registering it is all it takes for the trainer, the CLI, the loaders, evaluation, export and the
app's pages to work with it; declaring it as an installed package's entry point is all it takes
for every process genlab starts to know it too.

It is the simplest likelihood baseline there is: every pixel independent, each with its own
discretized logistic (the decoder of a VAE with no latent). No latent space, no k-sample bound,
no reconstructions: the pages must ask the model what it offers instead of assuming VAE or flow.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pixel_family import PixelBaseline

from genlab import load_model
from genlab.cli import main
from genlab.models import MODELS, register_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pixel_family(monkeypatch):
    monkeypatch.setitem(MODELS, "pixel", PixelBaseline)  # removed again after the test
    assert register_model(PixelBaseline) is PixelBaseline
    yield PixelBaseline


@pytest.fixture
def pixel_run(pixel_family, tmp_path):
    out = tmp_path / "runs" / "pixel-emoji"
    # the CLI's flags come from the family's config: --init-log-scale exists because PixelConfig declares it
    assert (
        main(
            [
                "train",
                "pixel",
                "--dataset",
                "emoji",
                "--image-size",
                "16",
                "--max-steps",
                "30",
                "--batch-size",
                "32",
                "--lr",
                "0.05",
                "--init-log-scale",
                "-0.5",
                "--log-every",
                "10",
                "--eval-every",
                "30",
                "--eval-batches",
                "2",
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
    return out


def test_a_family_defined_outside_genlab_trains_samples_and_evaluates(pixel_run, capsys, tmp_path):
    from genlab.metrics.likelihood import held_out_bpd
    from genlab.runs.rundir import RunDir

    run = RunDir(pixel_run)
    assert run.status() == "finished" and run.config().model_config == {"init_log_scale": -0.5}
    rows = run.read_metrics()
    train = [r.value("bpd") for r in rows if r.kind == "train"]
    assert len(train) == 3 and train[-1] < train[0]  # it learns
    assert run.latest_samples() is not None and not list(run.samples.glob("recon-*"))  # no reconstructions
    model = load_model(pixel_run)
    assert isinstance(model, PixelBaseline) and model.sample(3).shape == (3, 3, 16, 16)
    # held-out bits/dim falls back to the loss's (it has no k-sample bound), named as the family names it
    r = held_out_bpd(model, "emoji", max_images=32)
    assert r.kind == "exact (independent pixels)" and 0 < r.bpd < 9
    capsys.readouterr()
    assert main(["eval", str(pixel_run), "--n", "32", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_bpd"] == pytest.approx(r.bpd, rel=1e-5) and not any(k.startswith("iwae_k") for k in result)
    # export writes a model card with the family's own name
    from genlab.export import export_model, read_metrics

    out = export_model(pixel_run, tmp_path / "exported", fid_samples=0)
    assert read_metrics(out)["test_bpd_kind"] == "exact (independent pixels)"
    assert "Pixel baseline" in (out / "README.md").read_text()
    assert torch.equal(load_model(out).mean, model.mean)


def test_the_pages_open_with_a_family_they_have_never_heard_of(pixel_run, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(tmp_path / "no-checkpoints"))
    monkeypatch.setenv("GENLAB_RUNS", str(pixel_run.parent))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    for page in (
        "app_pages/home.py",
        "app_pages/sample.py",
        "app_pages/compare.py",
        "app_pages/train.py",
        "app_pages/models.py",
    ):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        if page == "app_pages/sample.py":
            assert at.selectbox(key="sample_model").value == str(pixel_run)
            before = at.get("image")[0].proto.imgs[0].url
            at.slider(key="temperature").set_value(0.3).run()
            assert at.get("image")[0].proto.imgs[0].url != before
            # no latent space: no latent sliders, no interpolation, no temperature strip
            assert not [
                s
                for s in at.subheader
                if s.value in ("Latent directions", "Interpolation", "Temperature strip", "Reconstructions")
            ]
        if page == "app_pages/compare.py":
            at.number_input(key="cmp_n").set_value(16)
            at.toggle(key="cmp_bpd").set_value(True).run()
            assert not at.exception, at.exception
            table = at.table[0].value
            assert list(table.loc["model"]) == ["Pixel baseline", "Pixel baseline"]
            assert table.loc["bits/dim is"].iloc[0] == "exact (independent pixels)"
            assert "exact (independent pixels)" in table.loc["tighter bound ↓"].iloc[0]
        if page == "app_pages/train.py":
            at.radio(key="train_model").set_value("pixel").run()
            assert at.radio(key="length").value == "steps" and at.number_input(key="amount").value == 20
            assert at.number_input(key="opt_pixel_init_log_scale").value == -1.0
            assert "pixel-emoji" in list(at.dataframe[0].value["run"])


def test_an_installed_plugin_family_reaches_every_process_genlab_starts(tmp_path):
    """An entry point in the ``genlab.models`` group, as ``pip install`` of a plugin package writes it:
    a fresh ``python -m genlab`` knows the family (so do the processes the app launches and resumes),
    and broken or clashing plugins are skipped with one line while genlab works on."""
    site = tmp_path / "site"
    dist = site / "genlab_pixel-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: genlab-pixel\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[genlab.models]\n"
        "pixel = pixel_family:PixelBaseline\n"
        "missing = no_such_module:Model\n"
        "clash = pixel_family:NotTheVAE\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}

    def genlab(*args):
        return subprocess.run(
            [sys.executable, "-m", "genlab", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    run = tmp_path / "run"
    small = ["--max-steps", "4", "--batch-size", "8", "--log-every", "2", "--eval-batches", "1", "--sample-n", "4"]
    args = ["pixel", "--dataset", "emoji", "--image-size", "16", "--init-log-scale", "-0.5", *small]
    p = genlab("train", *args, "--device", "cpu", "--out", str(run))
    assert p.returncode == 0, p.stderr
    assert "model plugin 'missing' (no_such_module:Model) was not loaded: No module named 'no_such_module'" in p.stderr
    assert "model plugin 'clash' (pixel_family:NotTheVAE) was not loaded: model type 'vae' is already" in p.stderr
    assert "Traceback" not in p.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["config"]["model_config"] == {"init_log_scale": -0.5}
    # another process, as the app's Resume starts it: it reads run.json, which names the family
    p = genlab("train", "--resume", str(run), "--max-steps", "6")
    assert p.returncode == 0, p.stderr
    assert json.loads((run / "checkpoint" / "config.json").read_text())["model_type"] == "pixel"
    p = genlab("sample", str(run), "--n", "4", "--out", str(tmp_path / "grid.png"))
    assert p.returncode == 0 and (tmp_path / "grid.png").is_file(), p.stderr
    p = genlab("train", "vae", "--help")  # the clash did not replace the built-in VAE
    assert p.returncode == 0 and "--latent-dim" in p.stdout
    # without the plugin installed, the same run is refused in one sentence
    del env["PYTHONPATH"]
    p = genlab("sample", str(run), "--n", "4")
    assert p.returncode != 0 and "unknown model type 'pixel'" in p.stderr and "Traceback" not in p.stderr
