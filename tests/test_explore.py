"""What the pages compute (genlab.explore, catalog, plots), with closed-form or independent answers."""

import io
import json
import zipfile

import pytest
import torch
from PIL import Image

from genlab import export, load_model
from genlab.catalog import available_models, export_zip
from genlab.explore import (
    decode,
    edit_latent,
    grid,
    informative_dims,
    interpolation,
    png_bytes,
    sample,
    seeded_latents,
    temperature_strip,
)
from genlab.models import VAE, RealNVP, RealNVPConfig, VAEConfig
from genlab.plots import compare_figure, fid_figure, loss_figure, lr_figure
from genlab.runs.records import FidRow, parse_row


@pytest.fixture
def vae():
    torch.manual_seed(0)
    return VAE(VAEConfig(image_size=8, channels=1, latent_dim=5, width=4, max_width=8)).eval()


@pytest.fixture
def flow():
    torch.manual_seed(0)
    f = RealNVP(RealNVPConfig(image_size=8, channels=1, num_scales=2, num_blocks=1, features=4))
    with torch.no_grad():
        for p in f.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return f.eval()


@pytest.mark.parametrize("which", ["vae", "flow"])
def test_sample_is_model_sample_with_a_seeded_generator(which, vae, flow):
    m = vae if which == "vae" else flow
    for t in (0.0, 0.7, 1.3):
        ref = m.sample(6, temperature=t, generator=torch.Generator().manual_seed(3))
        assert torch.equal(sample(m, 6, t, 3), ref)


def test_informative_dims_rank_by_closed_form_kl(vae):
    # an encoder whose posterior is N(mu_i, 1) with mu_i = 0.5 * i for every image: KL_i = mu_i^2 / 2
    with torch.no_grad():
        vae.encoder.head.weight.zero_()
        vae.encoder.head.bias.zero_()
        vae.encoder.head.bias[:5] = 0.5 * torch.arange(5.0)
    images = torch.randint(0, 256, (7, 1, 8, 8), dtype=torch.uint8)
    dims, kl = informative_dims(vae, images, k=3, batch_size=3)
    assert dims == [4, 3, 2]
    torch.testing.assert_close(kl, (0.5 * torch.arange(5.0, dtype=torch.float64)) ** 2 / 2)


def test_edit_latent_moves_only_the_chosen_dims():
    z = torch.zeros(5)
    out = edit_latent(z, [1, 3], [2.0, -1.0])
    assert out.tolist() == [0, 2, 0, -1, 0] and z.abs().sum() == 0


@pytest.mark.parametrize("which", ["vae", "flow"])
def test_temperature_strip_rows(which, vae, flow):
    m = vae if which == "vae" else flow
    strip = temperature_strip(m, [0.0, 1.0], 4, seed=5)
    assert strip.shape[0] == 8
    assert torch.allclose(strip[:4], decode(m, torch.zeros(4, *seeded_latents(m, 1, 0).shape[1:])))
    assert torch.allclose(strip[4:], sample(m, 4, 1.0, 5))


@pytest.mark.parametrize("method", ["slerp", "linear"])
def test_interpolation_ends_at_the_two_seeds(method, vae, flow):
    for m in (vae, flow):
        path = interpolation(m, 1, 2, steps=5, method=method, temperature=0.9)
        assert torch.allclose(path[0], sample(m, 1, 0.9, 1)[0], atol=1e-5)
        assert torch.allclose(path[-1], sample(m, 1, 0.9, 2)[0], atol=1e-5)


def test_grid_layout_and_png_round_trip():
    imgs = torch.rand(6, 3, 4, 4)
    g = grid(imgs, nrow=3, scale=2)
    assert g.size == (2 * (3 * 5 + 1), 2 * (2 * 5 + 1))  # 1-pixel gutters around and between cells
    back = Image.open(io.BytesIO(png_bytes(g)))
    assert back.size == g.size and back.tobytes() == g.tobytes()
    torch.testing.assert_close(torch.tensor(list(g.getpixel((2, 2)))).float(), imgs[0, :, 0, 0] * 255, atol=0.5, rtol=0)


def test_export_zip_reloads_identically(tmp_path, vae):
    vae.save_pretrained(tmp_path / "m")
    zf = zipfile.ZipFile(io.BytesIO(export_zip(tmp_path / "m")))
    assert sorted(zf.namelist()) == ["m/config.json", "m/model.safetensors"]
    zf.extractall(tmp_path / "out")
    again = load_model(tmp_path / "out" / "m")
    assert torch.equal(sample(again, 4, 1.0, 0), sample(vae, 4, 1.0, 0))


def test_catalog_lists_shipped_models_and_runs_with_a_checkpoint(tmp_path, vae, flow):
    ck, runs = tmp_path / "ck", tmp_path / "runs"
    vae.save_pretrained(ck / "v")
    (ck / "broken").mkdir(parents=True)
    (ck / "broken" / "config.json").write_text("{not json")
    flow.save_pretrained(runs / "r1" / "checkpoint")
    (runs / "r1" / "checkpoint" / "trainer_state.json").write_text("{}")
    (runs / "r1" / "run.json").write_text(json.dumps({"status": "finished", "config": {"dataset": "mnist"}}))
    (runs / "r2").mkdir()
    (runs / "r2" / "run.json").write_text(json.dumps({"status": "queued"}))  # nothing to sample yet
    entries = available_models(ck, runs)
    assert [(e.path.name, e.source, e.model_type, e.dataset) for e in entries] == [
        ("v", "shipped", "vae", None),
        ("r1", "run", "realnvp", "mnist"),
    ]


def test_the_catalog_rereads_a_model_folder_only_when_one_of_its_files_changes(tmp_path, vae, monkeypatch):
    vae.save_pretrained(tmp_path / "ck" / "v")
    reads = []
    real = export.read_config
    monkeypatch.setattr(export, "read_config", lambda d: reads.append(d) or real(d))
    first = available_models(tmp_path / "ck", tmp_path / "runs")
    assert available_models(tmp_path / "ck", tmp_path / "runs") == first and len(reads) == 1  # every rerun lists
    (tmp_path / "ck" / "v" / "metrics.json").write_text(json.dumps({"samples": {"temperature": 0.7}}))
    assert [e.temperature for e in available_models(tmp_path / "ck", tmp_path / "runs")] == [0.7]
    (tmp_path / "ck" / "v" / "config.json").write_text("{not json")
    assert available_models(tmp_path / "ck", tmp_path / "runs") == [] and len(reads) == 3


def test_figures_plot_the_rows_they_are_given():
    t = {"epoch": 0.0, "time": 0.0, "timestamp": 0.0}
    lines = [{"kind": "train", "step": s, "bpd": 5.0 - s / 100, "kl_bpd": 0.1, **t} for s in (10, 20, 30)]
    lines += [
        {"kind": "eval", "step": 30, "test_bpd": 4.9, **t},
        {"kind": "train", "step": 40, "bpd": float("nan"), **t},
    ]
    rows = [parse_row(json.dumps(d)) for d in lines]  # as read from metrics.jsonl
    fig = loss_figure(rows)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["train bits/dim"].x) == [10, 20, 30]  # the NaN row is left out
    assert list(by_name["test bits/dim"].y) == [4.9]
    assert fid_figure(rows) is None
    assert lr_figure(rows) is None  # no lr logged
    for r, lr in zip(rows[:3], (1e-3, 1e-3, 5e-4)):
        r.lr = lr
    fig = lr_figure(rows)
    assert list(fig.data[0].x) == [10, 20, 30] and list(fig.data[0].y) == [1e-3, 1e-3, 5e-4]
    rows[2].lr = 1e-3
    assert lr_figure(rows) is None  # a constant rate: no chart
    rows.append(
        FidRow(
            step=30, epoch=0.0, time=0.0, timestamp=0.0, fid=80.5, fid_samples=500, fid_weights="W", fid_ref_images=9
        )
    )
    f = fid_figure(rows)
    assert "FID@500" in f.layout.title.text and "W" in f.layout.title.text and list(f.data[0].y) == [80.5]
    assert len(compare_figure({"a": rows, "b": rows}).data) == 4


def test_the_sidebar_names_the_cpu_threads_in_good_english(monkeypatch):
    from genlab.catalog import describe_environment

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("genlab.catalog.has_fast_bf16", lambda device: False)
    for n, text in ((1, "CPU (1 thread; no CUDA GPU)"), (2, "CPU (2 threads; no CUDA GPU)")):
        monkeypatch.setattr(torch, "get_num_threads", lambda n=n: n)
        assert describe_environment().device == text
    monkeypatch.setattr("genlab.catalog.has_fast_bf16", lambda device: True)  # and where training runs in bf16
    assert describe_environment().device == "CPU (2 threads, trains in bf16; no CUDA GPU)"
