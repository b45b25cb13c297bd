"""genlab.metrics.ood: per-image bits/dim on several data sets, the complexity-corrected score, the typicality
test and AUROC, each checked against its definition computed another way; the cache, the scores a model
folder carries, and ``genlab ood``."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import genlab.metrics.ood as ood
from conftest import png_header
from genlab.cli import main
from genlab.errors import BadFile
from genlab.metrics.likelihood import nll_bound_bpd, per_image_bpd
from genlab.metrics.ood import (
    TYPICALITY_BATCH,
    TYPICALITY_BATCHES,
    auroc,
    batch_deviations,
    image_from_bytes,
    is_scored,
    ood_report,
    png_bits_per_dim,
    ranked,
    score_image,
    score_set,
    set_images,
    ship_scores,
    to_channels,
)
from genlab.models import RealNVP, RealNVPConfig

N = 24  # images per set: enough to exercise every path in seconds


@pytest.fixture
def flow(tmp_path, monkeypatch):
    """A tiny grey flow at 16×16 whose couplings are not the identity, saved as a model folder."""
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    model = RealNVP(RealNVPConfig(image_size=16, channels=1, num_scales=2, num_blocks=1, features=8))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "flow")
    (tmp_path / "flow" / "run.json").write_text(json.dumps({"config": {"model": "realnvp", "dataset": "mnist"}}))
    return model.eval()


def brute_auroc(inside, outside) -> float:
    """The definition: the share of (inlier, outlier) pairs where the outlier scores higher, ties one half."""
    x, y = np.asarray(inside)[:, None], np.asarray(outside)[None, :]
    return float(((y > x) + 0.5 * (y == x)).mean())


@pytest.mark.parametrize("seed", range(4))
def test_auroc_is_the_share_of_pairs_the_outlier_wins(seed):
    g = np.random.default_rng(seed)
    inside, outside = g.integers(0, 6, 40).astype(float), g.integers(2, 9, 31).astype(float)  # many ties
    assert auroc(inside, outside) == pytest.approx(brute_auroc(inside, outside), abs=1e-12)
    assert auroc([0, 1], [2, 3]) == 1.0 and auroc([2, 3], [0, 1]) == 0.0 and auroc([1, 1], [1]) == 0.5


def test_png_size_grows_with_complexity_and_is_measured_in_bits_per_subpixel():
    flat = torch.full((1, 1, 32, 32), 7, dtype=torch.uint8)
    noise = torch.randint(0, 256, (1, 1, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise[0, 0].numpy()).save(buf, format="PNG", compress_level=9)
    assert png_bits_per_dim(noise)[0] == pytest.approx(8 * len(buf.getvalue()) / 1024)
    assert png_bits_per_dim(flat)[0] < 1 < 8 < png_bits_per_dim(noise)[0]  # noise does not compress


def test_colour_becomes_grey_as_pil_converts_it():
    rgb = torch.randint(0, 256, (2, 3, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    grey = to_channels(rgb, 1)
    pil = np.stack([np.asarray(Image.fromarray(x.permute(1, 2, 0).numpy()).convert("L")) for x in rgb])
    assert np.abs(grey[:, 0].numpy().astype(int) - pil).max() <= 1  # PIL rounds in fixed point
    assert torch.equal(to_channels(grey, 3)[:, 2], grey[:, 0])


def test_batch_deviation_is_the_distance_of_a_batch_mean_from_h():
    bpd = np.array([1.0, 2.0, 3.0, 4.0])
    dev = batch_deviations(bpd, 2.5, 2, 50, seed=0)
    idx = np.random.default_rng(0).integers(0, 4, size=(50, 2))
    assert np.allclose(dev, np.abs(bpd[idx].mean(1) - 2.5))


def test_per_image_bits_per_dim_average_to_the_evaluations_figure(flow):
    images, _ = set_images(flow, "mnist", "test", N)
    each = per_image_bpd(flow, images, k=1, batch_size=5)
    assert each.shape == (N,) and each.dtype == torch.float64
    assert each.mean().item() == pytest.approx(nll_bound_bpd(flow, images, k=1, batch_size=5))
    assert torch.allclose(each, per_image_bpd(flow, images, k=1, batch_size=N))  # whatever the batch size


def test_the_report_scores_every_set_once_and_reads_the_cache_after(flow, tmp_path, monkeypatch):
    calls = []
    report = ood_report(flow, "mnist", ["fashion-mnist", "emoji"], n=N, on_set=calls.append)
    assert calls == ["mnist train", "mnist test", "fashion-mnist test", "emoji test"]
    assert list(report.sets) == ["mnist", "fashion-mnist", "emoji (grey)"]  # colour emoji asked of a grey model
    inside, fashion = report.sets["mnist"], report.sets["fashion-mnist"]
    pair = report.pairs[0]
    assert pair.auroc_bpd == pytest.approx(brute_auroc(inside.bpd, fashion.bpd))
    assert pair.auroc_complexity == pytest.approx(
        brute_auroc(inside.bpd - inside.png_bpd, fashion.bpd - fashion.png_bpd)
    )
    h = report.train.bpd.mean()
    assert pair.auroc_typicality == pytest.approx(brute_auroc(abs(inside.bpd - h), abs(fashion.bpd - h)))
    assert [r["data"] for r in report.summary()] == ["mnist (in)", "fashion-mnist", "emoji (grey)"]
    assert is_scored(flow, "fashion-mnist", "test", N)
    monkeypatch.setattr(ood, "per_image_bpd", lambda *a, **k: pytest.fail("scored again"))
    again = ood_report(flow, "mnist", ["fashion-mnist", "emoji"], n=N)
    assert np.array_equal(again.sets["emoji (grey)"].bpd, report.sets["emoji (grey)"].bpd)
    # the typicality test: the threshold from batches of the first half of the own test set, flags on the rest
    half = N // 2
    expected = np.quantile(batch_deviations(inside.bpd[:half], h, TYPICALITY_BATCH, TYPICALITY_BATCHES, 7), 0.99)
    assert report.threshold == pytest.approx(expected)
    flagged = batch_deviations(fashion.bpd, h, TYPICALITY_BATCH, TYPICALITY_BATCHES, 1) > report.threshold
    assert pair.flagged_batches == pytest.approx(flagged.mean())
    assert report.false_alarms == pytest.approx(
        (batch_deviations(inside.bpd[half:], h, TYPICALITY_BATCH, TYPICALITY_BATCHES, 0) > expected).mean()
    )
    low, high = ranked(report, "bits/dim", 3)
    everything = np.concatenate([s.bpd for s in report.sets.values()])
    assert [report.sets[n].bpd[i] for n, i in low] == sorted(everything)[:3]
    assert [report.sets[n].bpd[i] for n, i in high] == sorted(everything)[::-1][:3]


def test_a_model_folder_carries_its_scores_and_a_bad_file_there_is_recomputed(flow, tmp_path, monkeypatch):
    report = ood_report(flow, "mnist", ["fashion-mnist"], n=N)
    ship_scores(flow, report, tmp_path / "flow")
    (tmp_path / "home" / "ood").rename(tmp_path / "old-cache")  # a fresh machine: the folder alone has them
    assert is_scored(flow, "mnist", "train", N, shipped=tmp_path / "flow" / "ood")
    shipped = next((tmp_path / "flow" / "ood").rglob("fashion-mnist-test-*.npz"))
    np.savez(shipped, bpd=np.zeros(3), png_bpd=np.zeros(3))  # the wrong size: not trusted
    assert not is_scored(flow, "fashion-mnist", "test", N, shipped=tmp_path / "flow" / "ood")
    s = score_set(flow, "fashion-mnist", "test", N, shipped=tmp_path / "flow" / "ood")
    assert np.allclose(s.bpd, report.sets["fashion-mnist"].bpd)
    monkeypatch.setattr(ood, "per_image_bpd", lambda *a, **k: pytest.fail("scored again"))
    assert np.array_equal(
        score_set(flow, "mnist", "test", N, shipped=tmp_path / "flow" / "ood").bpd, report.sets["mnist"].bpd
    )


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_an_uploaded_image_is_scored_like_the_same_image_in_a_set(flow):
    images, _ = set_images(flow, "mnist", "test", 1)
    x = image_from_bytes(_png(images[0, 0].numpy()), 16, 1)
    assert torch.equal(x, images[:1])
    bpd, png = score_image(flow, x)
    assert bpd == pytest.approx(per_image_bpd(flow, images[:1]).item())
    assert png == pytest.approx(png_bits_per_dim(images[:1])[0])
    rgba = np.zeros((40, 30, 4), np.uint8)  # fully transparent: white once composited, resized whole
    assert (image_from_bytes(_png(rgba), 16, 3) == 255).all()


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="GIF")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, says",
    [(b"\x89PNG" + b"0" * (3 * 1024 * 1024), "limit is 2 MB"),
     (png_header(60000, 60000), "the limit is 4096×4096 pixels"),
     (png_header(5000, 5000), "the image is 5000×5000 pixels"),
     (b"not an image at all", "not a PNG or JPEG image this app can read"),
     (_gif(), "not a PNG or JPEG image this app can read"),
     (_png(np.zeros((8, 8), np.uint8))[:-30] + b"garbage-after-the-data", "not a PNG or JPEG image this app can read")],
)  # fmt: skip
def test_an_upload_too_big_or_unreadable_is_one_sentence(data, says):
    with pytest.raises(BadFile) as e:
        image_from_bytes(data, 16, 1)
    assert says in str(e.value)


def test_genlab_ood_prints_the_table_and_saves_the_report(flow, tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = ["ood", str(tmp_path / "flow"), "--out", "fashion-mnist", "--n", str(N), "--json", str(out), "--ship"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "mnist (in)" in printed and "AUROC bits/dim" in printed and f"wrote {out}" in printed
    saved = json.loads(out.read_text())
    assert saved["in_dataset"] == "mnist" and len(saved["per_image"]["fashion-mnist"]["bpd"]) == N
    assert saved["table"][1]["AUROC bits/dim"] == pytest.approx(saved["pairs"][0]["auroc_bpd"])
    assert list((tmp_path / "flow" / "ood").rglob("*.npz"))
    assert main(["ood", str(tmp_path / "flow"), "--out", "cifar10", "--n", str(N)]) == 2
    assert "cifar10" in capsys.readouterr().err
