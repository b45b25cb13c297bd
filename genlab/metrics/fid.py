"""Fréchet Inception Distance that agrees with pytorch-fid, offline: statistics and the distance.

- Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium", arXiv 1706.08500 (FID).
- Features come from ``genlab.metrics.inception`` (pytorch-fid's network and weights), so values
  agree with ``python -m pytorch_fid`` given the same weights. Statistics are float64.
- ``frechet_distance`` computes tr sqrt(S1 S2) from symmetric eigendecompositions
  (S1^1/2 S2 S1^1/2 is symmetric PSD with the same eigenvalues as S1 S2) instead of
  scipy's general ``sqrtm``: faster on 2048×2048, no imaginary parts to discard, and
  rank-deficient covariances (fewer images than 2048) need no epsilon offset.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import names
from ..data import IMAGE_EXTENSIONS, dataset_info, load_dataset, read_image_folder
from ..errors import BadFile, CheckpointError, ConfigError
from ..models import load_model, resolve_model_dir
from ..models.base import read_config
from ..paths import cache_dir, safe_name
from ..storage import atomic_save_npz
from .inception import (  # noqa: F401
    RANDOM_SOURCE,
    FIDWeightsUnavailable,
    InceptionFeatures,
    InceptionWeights,
    describe_weights,
    resolve_weights,
)


# -- statistics and distance ----------------------------------------------------------------------
@dataclass
class FIDStats:
    mu: np.ndarray  # [2048] float64
    sigma: np.ndarray  # [2048, 2048] float64
    n: int
    weights: str = ""

    @classmethod
    def from_features(cls, feats: np.ndarray, weights: str = "") -> FIDStats:
        if len(feats) < 2:
            raise ConfigError(f"FID needs at least 2 images, got {len(feats)}")
        f = feats.astype(np.float64)
        return cls(f.mean(0), np.cov(f, rowvar=False), len(f), weights)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npz(path, mu=self.mu, sigma=self.sigma, n=self.n, weights=self.weights)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FIDStats:
        try:
            with np.load(path, allow_pickle=False) as z:
                mu, sigma = z["mu"].astype(np.float64), z["sigma"].astype(np.float64)
                n = int(z["n"]) if "n" in z else -1
                w = str(z["weights"]) if "weights" in z else "unknown (pytorch-fid format)"
        except (OSError, ValueError, KeyError) as e:
            raise BadFile(f"{path} is not a statistics file with 'mu' and 'sigma' ({e})") from None
        if mu.shape != (2048,) or sigma.shape != (2048, 2048):
            raise BadFile(f"{path}: expected mu [2048] and sigma [2048, 2048], got {mu.shape} and {sigma.shape}")
        return cls(mu, sigma, n, w)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), all in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ConfigError("the two sets of statistics have different dimensions")
    r1 = _sqrt_psd(s1)
    eig = np.linalg.eigvalsh(r1 @ s2 @ r1)  # the eigenvalues of S1 S2, real and >= 0 up to rounding
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    # a squared distance: rounding can leave about -1e-12 for two identical sets, which printed as "-0.0000"
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean))


def fid_from_stats(a: FIDStats, b: FIDStats) -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


# -- inputs ----------------------------------------------------------------------------------------
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

    def stats_of_dataset(
        self, dataset: str, split: str, image_size: int, n: int | None = None, use_cache: bool = True
    ) -> FIDStats:
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
    def features_of_model(self, model, n: int, temperature=1.0, seed: int = 0, batch_size: int = 100) -> np.ndarray:
        """Inception features of n samples drawn in batches from one generator seeded ``seed``: [n, 2048]."""
        g = torch.Generator().manual_seed(seed)
        feats = []
        for start in range(0, n, batch_size):
            x = model.sample(min(batch_size, n - start), temperature=temperature, generator=g)
            feats.append(self.features(x.float().clamp(0, 1)))
        return np.concatenate(feats)

    def stats_of_model(self, model, n: int, temperature=1.0, seed: int = 0, batch_size: int = 100) -> FIDStats:
        return FIDStats.from_features(self.features_of_model(model, n, temperature, seed, batch_size), self.source)

    def stats(self, spec: str, n: int | None = None, image_size: int | None = None, seed: int = 0) -> FIDStats:
        """Statistics of a .npz file, a folder of images, a model or run directory, or 'dataset:split'."""
        p = Path(spec).expanduser()
        if spec.endswith(".npz") and p.is_file():
            return FIDStats.load(p)
        if p.is_dir():
            if (p / names.CONFIG).is_file() or (p / names.CHECKPOINT / names.CONFIG).is_file():
                model = load_model(p, map_location=self.features.device)
                return self.stats_of_model(model, n or 10000, seed=seed)
            images = read_image_folder(p, limit=n)
            if not images:
                raise ConfigError(f"{p} holds no readable images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
            return self.stats_of_images(images)
        if ":" in spec and not p.exists():
            dataset, _, split = spec.rpartition(":")
            if split in ("train", "test"):
                return self.stats_of_dataset(dataset, split, image_size or 64, n)
            return self.stats_of_dataset(spec, "train", image_size or 64, n)
        if spec.endswith(".npz"):
            raise ConfigError(f"{spec}: no such statistics file")
        dataset_info(spec)  # an unknown name raises a clear DatasetUnavailable
        return self.stats_of_dataset(spec, "train", image_size or 64, n)

    def between(self, a: str, b: str, n: int | None = None, image_size: int | None = None, seed: int = 0) -> dict:
        """``genlab fid A B``: FID between two of a data set split, an image folder, a model or run directory and a
        statistics file. A data set compared with a model is read at the model's resolution unless told otherwise."""
        t0 = time.perf_counter()
        size = image_size or _model_image_size(a) or _model_image_size(b)
        sa = self.stats(a, n=n, image_size=size, seed=seed)
        sb = self.stats(b, n=n, image_size=size, seed=seed + 1)
        return {
            "fid": fid_from_stats(sa, sb),
            "n_a": sa.n,
            "n_b": sb.n,
            "weights": self.source,
            "seconds": round(time.perf_counter() - t0, 2),
        }


def _model_image_size(spec: str) -> int | None:
    """The resolution of the model at ``spec``; None when ``spec`` is no model."""
    try:
        return int(read_config(resolve_model_dir(spec))["image_size"])
    except (CheckpointError, KeyError, ValueError, OSError):
        return None
