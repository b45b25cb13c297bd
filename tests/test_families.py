"""A model family that genlab has never heard of, defined only here: registering it is all it takes
for the trainer, the CLI, the loaders, evaluation, export and the app's pages to work with it.

It is the simplest likelihood baseline there is: every pixel independent, each with its own
discretized logistic (the decoder of a VAE with no latent). No latent space, no k-sample bound,
no reconstructions: the pages must ask the model what it offers instead of assuming VAE or flow.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from genlab import load_model
from genlab.cli import main
from genlab.config import check, setting
from genlab.distributions import discretized_logistic_log_prob
from genlab.models import MODELS, register_model
from genlab.models.base import GenerativeModel, TrainDefaults

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class PixelConfig:
    image_size: int = setting(16, flag=False)
    channels: int = setting(3, flag=False)
    init_log_scale: float = setting(-1.0, "initial log-scale of every pixel's logistic", max=2.0)

    def __post_init__(self):
        check(self)


class PixelBaseline(GenerativeModel):
    model_type = "pixel"
    config_class = PixelConfig
    display_name = "Pixel baseline"
    train_defaults = TrainDefaults(batch_size=32, epochs=None, max_steps=20)
    loss_bpd_kind = "exact (independent pixels)"

    def __init__(self, config: PixelConfig | None = None):
        super().__init__(config or PixelConfig())
        c = self.config
        shape = (c.channels, c.image_size, c.image_size)
        self.mean = nn.Parameter(torch.full(shape, 0.5))
        self.log_scale = nn.Parameter(torch.full(shape, c.init_log_scale))

    def loss(self, x):
        lp = discretized_logistic_log_prob(x, self.mean.expand_as(x), self.log_scale.expand_as(x))  # [B, C, H, W]
        bpd = -lp.flatten(1).sum(1).mean() / (x[0].numel() * math.log(2))
        return bpd, {"loss": bpd.detach(), "bpd": bpd.detach()}

    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None):
        u = torch.rand((n, *self.mean.shape), generator=generator).clamp(1e-6, 1 - 1e-6).to(self.mean.device)
        x = self.mean + temperature * self.log_scale.exp() * (u.log() - (-u).log1p())  # logistic noise
        return (x.clamp(0, 1) * 255).round() / 255


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
    assert result["bpd"] == pytest.approx(r.bpd, rel=1e-5) and not any(k.startswith("nll_bpd") for k in result)
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
            table = at.dataframe[0].value
            assert list(table["model"]) == ["Pixel baseline", "Pixel baseline"]
            assert "exact (independent pixels)" in table["test bits/dim"][0]
        if page == "app_pages/train.py":
            at.radio(key="train_model").set_value("pixel").run()
            assert at.radio(key="length_pixel").value == "steps" and at.number_input(key="amount_pixel").value == 20
            assert at.number_input(key="opt_pixel_init_log_scale").value == -1.0
            assert "pixel-emoji" in list(at.dataframe[0].value["run"])
