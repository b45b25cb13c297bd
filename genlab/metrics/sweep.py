"""Sample quality against temperature: FID@K, KID and precision/recall at each temperature.

Lower temperatures trade diversity for fidelity (Kingma & Dhariwal, "Glow", arXiv 1807.03039, §6):
precision (Kynkäänniemi et al., arXiv 1904.06991) should rise as T falls and recall fall, and FID
and KID (Bińkowski et al., arXiv 1801.01401) find where the two balance. All four come from one
Inception pass over the samples of each temperature, against one pass over the reference (the
model's training images, as its card's FID): ``genlab sweep`` prints them, the Compare page plots them.

Each temperature's figures are cached under ``GENLAB_HOME/sweeps/``, keyed by the model's digest
(its config and weights), the sample count, the seed, the reference and the Inception weights, so a
repeated sweep, or the app after the CLI, reads them at once. At T=1 the samples are the card's
(seed 0, batches of 100), so the FID there is the card's FID.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data import load_dataset
from ..errors import ConfigError
from ..models.base import MAX_TEMPERATURE
from ..paths import cache_dir, safe_name
from ..storage import atomic_save_npz, atomic_write_json, read_small_npz
from .fid import FID, FIDStats, fid_from_stats
from .quality import KID_SUBSET_SIZE, kid, precision_recall

MAX_TEMPERATURES = 41  # a sweep a person can read on one chart; each point is one Inception pass
SWEEP_SAMPLES = 1000  # FID@1000, as on the cards
SWEEP_REF = 2000  # training images in the reference, as the shipped cards' FID
# KID's kernel and precision/recall's distance matrices are N × M: 10,000 of each side take about 3 GB
MAX_SWEEP_IMAGES = 10_000


def parse_temperatures(text: str) -> list[float]:
    """'0.5:1.0:0.1' (start:stop:step, both ends included) or '0.6,0.8,1' -> [0.5, 0.6, ..., 1.0]."""
    how = "give start:stop:step (e.g. 0.5:1.0:0.1) or a list (0.6,0.8,1)"
    try:
        parts = [float(p) for p in text.split(":" if ":" in text else ",")]
    except ValueError:
        raise ConfigError(f"--temperatures {text}: {how}") from None
    if ":" in text:
        if len(parts) != 3 or not parts[2] > 0 or parts[1] < parts[0]:
            raise ConfigError(f"--temperatures {text}: {how}, with stop ≥ start and step > 0")
        start, stop, step = parts
        count = math.floor((stop - start) / step + 1e-9) + 1
        parts = [round(start + i * step, 10) for i in range(min(count, MAX_TEMPERATURES + 1))]
    if not parts or len(parts) > MAX_TEMPERATURES:
        raise ConfigError(f"--temperatures {text}: give 1 to {MAX_TEMPERATURES} temperatures")
    if not all(math.isfinite(t) and 0 <= t <= MAX_TEMPERATURE for t in parts):
        raise ConfigError(f"--temperatures {text}: each temperature is a number from 0 to {MAX_TEMPERATURE:g}")
    return sorted(set(parts))


@dataclass(frozen=True)
class SweepPoint:
    temperature: float
    fid: float
    kid: float
    kid_std: float  # over KID's subsets
    precision: float
    recall: float
    samples: int
    reference: str  # "mnist train split, 2000 images"
    weights: str  # the Inception weights' source

    @classmethod
    def from_json(cls, d: dict) -> SweepPoint:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def quality_point(real: np.ndarray, fake: np.ndarray, temperature: float, reference: str, weights: str) -> SweepPoint:
    """Every figure of one temperature from the two feature sets, [N, 2048] and [M, 2048]."""
    k = kid(real, fake, subset_size=min(KID_SUBSET_SIZE, len(real), len(fake)))
    pr = precision_recall(real, fake)
    fid = fid_from_stats(FIDStats.from_features(real), FIDStats.from_features(fake))
    return SweepPoint(temperature, fid, k.mean, k.std, pr.precision, pr.recall, len(fake), reference, weights)


def _folder() -> Path:
    return cache_dir() / "sweeps"


def reference_features(fid: FID, dataset: str, image_size: int, n: int) -> np.ndarray:
    """Inception features of the first n training images of ``dataset`` (the FID reference), cached: [n, 2048]."""
    path = _folder() / f"ref-{safe_name(dataset)}-{image_size}-n{n}-{fid.features.weights.key}.npz"
    z = read_small_npz(path, 4 * 2048 * n + 1024)  # absent, damaged or not ours: computed again
    feats = z.get("features") if z else None
    if (
        feats is not None
        and feats.ndim == 2
        and len(feats) == n
        and feats.dtype == np.float32
        and np.isfinite(feats).all()
    ):
        return feats
    images = load_dataset(dataset, image_size).split("train")[:n]
    feats = fid.features(images)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npz(path, features=feats)
    except OSError:
        pass  # an unwritable cache only costs time
    return feats


def _prefix(dataset: str, n: int, ref_n: int, seed: int) -> str:
    return f"{safe_name(dataset)}-ref{ref_n}-n{n}-seed{seed}-"


def point_file(model, dataset: str, n: int, ref_n: int, seed: int, weights_key: str, t: float) -> Path:
    """Where one temperature's figures are kept, under the cache or a model folder's ``sweep/``."""
    return Path(model.digest()) / f"{_prefix(dataset, n, ref_n, seed)}{weights_key}-T{t:g}.json"


def cached_sweep(
    model, dataset: str, n: int = SWEEP_SAMPLES, ref_n: int = SWEEP_REF, seed: int = 0, shipped: Path | None = None
) -> list[SweepPoint]:
    """Every temperature swept for this model and setting so far, coolest first: from the cache, or from the
    points a model folder carries (``shipped``, its ``sweep/``). One Inception weights' points, never a mix."""
    found: dict[tuple[str, float], SweepPoint] = {}
    for root in (shipped, _folder()):  # the cache's points win
        folder = root / model.digest() if root else None
        for path in (
            sorted(folder.glob(_prefix(dataset, n, ref_n, seed) + "*.json")) if folder and folder.is_dir() else []
        ):
            point = _read(path)
            if point:
                found[(point.weights, point.temperature)] = point
    by_weights: dict[str, list[SweepPoint]] = {}
    for (w, _), p in found.items():
        by_weights.setdefault(w, []).append(p)
    best = max(by_weights.values(), key=len, default=[])
    return sorted(best, key=lambda p: p.temperature)


def sweep(
    model,
    dataset: str,
    temperatures: list[float],
    n: int = SWEEP_SAMPLES,
    ref_n: int = SWEEP_REF,
    seed: int = 0,
    device: str = "auto",
    on_point=None,
    shipped: Path | None = None,
    ship: bool = False,
) -> list[SweepPoint]:
    """FID@n, KID and precision/recall of ``model``'s samples at each temperature against its training images.
    Points in the cache or in ``shipped`` (a model folder's ``sweep/``) are read, not recomputed; ``ship`` also
    writes every point there. ``on_point(point, cached)`` is called as each one is ready."""
    if not (4 <= n <= MAX_SWEEP_IMAGES and 4 <= ref_n <= MAX_SWEEP_IMAGES):
        raise ConfigError(
            f"a sweep takes 4 to {MAX_SWEEP_IMAGES:,} samples and reference images (precision/recall's k=3 needs "
            f"4; the kernel and distance matrices grow with the square), got {n:,} and {ref_n:,}"
        )
    fid = FID(device=device)
    real, reference, out = None, None, []
    for t in temperatures:
        file = point_file(model, dataset, n, ref_n, seed, fid.features.weights.key, t)
        point = next((p for root in (_folder(), shipped) if root and (p := _read(root / file))), None)
        cached = point is not None
        if not cached:
            if real is None:
                real = reference_features(fid, dataset, model.config.image_size, ref_n)
                reference = f"{dataset} train split, {len(real)} images"
            fake = fid.features_of_model(model, n, temperature=t, seed=seed)
            point = quality_point(real, fake, t, reference, fid.source)
        if not cached:
            _write(_folder() / file, point)
        if ship and shipped:  # asked for: a folder that cannot be written is an error, not a skipped cache
            (shipped / file).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(shipped / file, asdict(point))
        if on_point:
            on_point(point, cached)
        out.append(point)
    return out


def _write(path: Path, point: SweepPoint) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, asdict(point))
    except OSError:
        pass  # an unwritable cache only costs time


MAX_POINT_BYTES = 4096  # a point's JSON is about 400 bytes


def _read(path: Path) -> SweepPoint | None:
    """One cached or carried point, or None when it is absent, damaged or not a point (every field checked)."""
    try:
        if path.stat().st_size > MAX_POINT_BYTES:
            return None
        d = json.loads(path.read_text())
        p = SweepPoint.from_json(d)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    numbers = (p.temperature, p.fid, p.kid, p.kid_std, p.precision, p.recall)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
        return None
    if not (isinstance(p.samples, int) and isinstance(p.reference, str) and isinstance(p.weights, str)):
        return None
    return p
