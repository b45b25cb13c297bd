"""genlab sweep: FID, KID and precision/recall of a model's samples at each temperature, from one Inception pass
per temperature, cached by the model's digest and carried by a model folder. These tests check the bookkeeping,
with a cheap stand-in for the Inception network (64 features: FID's 2048×2048 eigendecompositions cost seconds);
tests/test_quality.py checks the metrics against torch-fidelity."""

import json

import numpy as np
import pytest
import torch

import genlab.metrics.fid as fid_module
from genlab.cli import main
from genlab.errors import ConfigError
from genlab.metrics.fid import FID, FIDStats, fid_from_stats
from genlab.metrics.inception import resolve_weights
from genlab.metrics.quality import kid, precision_recall
from genlab.metrics.sweep import cached_sweep, parse_temperatures, reference_features, sweep
from genlab.models import VAE, VAEConfig

N, REF = 8, 10


class PixelFeatures:
    """Inception's interface at a thousandth of its cost: 64 fixed random projections of 4×4-pooled pixels."""

    def __init__(self, device="cpu", weights=None, batch_size=100):
        self.weights, self.device = weights or resolve_weights(), torch.device("cpu")
        self.projection = torch.randn(3 * 16, 64, generator=torch.Generator().manual_seed(0))

    @property
    def source(self) -> str:
        return self.weights.source

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        x = torch.nn.functional.adaptive_avg_pool2d(x.expand(-1, 3, -1, -1), 4).flatten(1)
        return torch.relu(x @ self.projection).numpy().astype(np.float32)


@pytest.fixture
def vae(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENLAB_FID_RANDOM_WEIGHTS", "1")  # labelled as random wherever a figure goes
    monkeypatch.setattr(fid_module, "InceptionFeatures", PixelFeatures)
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_size=16, latent_dim=8, width=8, max_width=16)).eval()
    model.save_pretrained(tmp_path / "vae")
    (tmp_path / "vae" / "run.json").write_text(json.dumps({"config": {"model": "vae", "dataset": "emoji"}}))
    return model


@pytest.mark.parametrize(
    "text, values",
    [("0.5:1.0:0.1", [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]), ("1,0.6,0.6", [0.6, 1.0]), ("0:0.2:0.1", [0.0, 0.1, 0.2])],
)
def test_temperatures_are_a_range_or_a_list(text, values):
    assert parse_temperatures(text) == values


@pytest.mark.parametrize("text", ["a:b:c", "1:0.5:0.1", "0:1:0", "0:1:0.001", "0.5,9", "nan", ""])
def test_a_bad_range_is_one_sentence(text):
    with pytest.raises(ConfigError, match="--temperatures"):
        parse_temperatures(text)


def test_each_point_is_every_metric_of_one_feature_pass(vae):
    points = sweep(vae, "emoji", [0.5, 1.0], n=N, ref_n=REF, device="cpu")
    fid = FID(device="cpu")
    real = reference_features(fid, "emoji", 16, REF)
    for p in points:
        fake = fid.features_of_model(vae, N, temperature=p.temperature, seed=0)
        assert p.fid == pytest.approx(fid_from_stats(FIDStats.from_features(real), FIDStats.from_features(fake)))
        assert p.kid == pytest.approx(kid(real, fake, subset_size=N).mean)
        assert (p.precision, p.recall) == tuple(vars(precision_recall(real, fake)).values())[:2]
        assert p.samples == N and p.reference == f"emoji train split, {REF} images" and "RANDOM" in p.weights
    # at T=1 the samples and the reference are the card's (genlab.export): the same FID
    card = fid_from_stats(
        fid.stats_of_model(vae, N, temperature=1.0, seed=0), fid.stats_of_dataset("emoji", "train", 16, REF)
    )
    assert points[1].fid == pytest.approx(card, rel=1e-6)


def test_a_swept_temperature_is_read_not_recomputed(vae, monkeypatch):
    sweep(vae, "emoji", [0.7], n=N, ref_n=REF, device="cpu")
    seen = []
    monkeypatch.setattr(FID, "features_of_model", lambda *a, **k: pytest.fail("sampled again"))
    again = sweep(vae, "emoji", [0.7], n=N, ref_n=REF, device="cpu", on_point=lambda p, cached: seen.append(cached))
    assert seen == [True] and [p.temperature for p in again] == [0.7]
    assert [p.temperature for p in cached_sweep(vae, "emoji", N, REF)] == [0.7]


def test_a_model_folder_carries_its_points(vae, tmp_path):
    folder = tmp_path / "vae" / "sweep"
    sweep(vae, "emoji", [0.6, 0.8], n=N, ref_n=REF, device="cpu", shipped=folder, ship=True)
    (tmp_path / "home" / "sweeps").rename(tmp_path / "old-cache")  # a fresh machine: the folder alone has them
    assert [p.temperature for p in cached_sweep(vae, "emoji", N, REF, shipped=folder)] == [0.6, 0.8]
    next(folder.rglob("*T0.8.json")).write_text("{not json")
    assert [p.temperature for p in cached_sweep(vae, "emoji", N, REF, shipped=folder)] == [0.6]
    other = VAE(VAEConfig(image_size=16, latent_dim=8, width=8, max_width=16))  # other weights: not its points
    assert cached_sweep(other, "emoji", N, REF, shipped=folder) == []


def test_genlab_sweep_prints_a_line_per_temperature(vae, tmp_path, capsys):
    argv = ["sweep", str(tmp_path / "vae"), "--temperatures", "0.5,1", "--n", "10", "--ref-n", "10", "--json"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["temperature"] for r in rows] == [0.5, 1.0] and not any(r["cached"] for r in rows)
    assert np.isfinite([r["fid"] for r in rows]).all()
    assert main(["sweep", str(tmp_path / "vae"), "--temperatures", "1:0"]) == 2
    assert "--temperatures 1:0" in capsys.readouterr().err
