"""What a likelihood model believes about images it was not trained on: per-image bits/dim on several data
sets, and three ways to score "not from my training data" with them.

- Nalisnick, Matsukawa, Teh, Gorur, Lakshminarayanan, "Do Deep Generative Models Know What They Don't
  Know?", ICLR 2019, arXiv 1810.09136: flows, VAEs and PixelCNNs trained on Fashion-MNIST give MNIST's
  test images *lower* bits/dim than Fashion-MNIST's own (their Figure 1). Raw bits/dim as an
  out-of-distribution score then has an AUROC below 0.5.
- Serrà, Álvarez, Gómez, Slizovskaia, Núñez, Luque, "Input Complexity and Out-of-Distribution Detection
  with Likelihood-based Generative Models", ICLR 2020, arXiv 1909.11480: S(x) = −log₂ p(x) − L(x), with
  L(x) the length in bits of x under a generic lossless compressor (PNG here), both per dimension. Simple
  images are likely under every model; S asks how much likelier this model finds x than a compressor.
- Nalisnick, Matsukawa, Teh, Lakshminarayanan, "Detecting Out-of-Distribution Inputs to Deep Generative
  Models Using Typicality", arXiv 1906.02994: a batch is out of distribution when its mean bits/dim is
  far from the training data's, ε̂ = |mean bpd − Ĥ|, above or below; the threshold is the 99th percentile
  of ε̂ over bootstrapped batches of held-out images (Alg. 1: here the first half of the model's own test
  set; the false alarms are counted on the other half).
- Ren et al., "Likelihood Ratios for Out-of-Distribution Detection", NeurIPS 2019, arXiv 1906.02845,
  corrects with a background model instead; not computed here.

Bits/dim are the evaluation every page uses (``likelihood.per_image_bpd``): exact for a flow, the IWAE
bound (k=100) for a VAE. Scores are cached per model digest, data set, count and k, so the Likelihood
page reads what ``genlab ood`` computed.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import names
from ..data import list_datasets, load_dataset, require_dataset
from ..errors import BadFile, ConfigError, DatasetUnavailable
from ..paths import cache_dir, safe_name
from ..storage import atomic_save_npz, read_small_npz
from .likelihood import per_image_bpd

OOD_IMAGES = 2000  # per data set: AUROC's standard error is below 0.01 there
TYPICALITY_BATCH = 10  # images per batch of the typicality test
TYPICALITY_BATCHES = 1000
TYPICALITY_QUANTILE = 0.99
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096  # decoded size: a small PNG can declare an enormous image
UPLOAD_FORMATS = ("PNG", "JPEG")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, PIL's convert("L")


# -- the ladder: images -> bits/dim and complexity -> scores -> AUROC ------------------------------------
def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [N, C, S, S] with C in (1, 3) -> [N, channels, S, S]: colour to grey by BT.601 luma, grey to colour
    by repetition, so a grey model can be asked about colour images and the other way round."""
    if images.shape[1] == channels:
        return images
    if channels == 1 and images.shape[1] == 3:
        w = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        return (images.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ConfigError(f"cannot turn {images.shape[1]}-channel images into {channels}-channel ones")


def png_bits_per_dim(images: torch.Tensor) -> np.ndarray:
    """L(x): the length of each uint8 image [N, C, S, S] as a PNG at the strongest compression, in bits per
    subpixel (Serrà et al. §3). The file's fixed header adds the same to every image of a size."""
    out = np.empty(len(images))
    for i, x in enumerate(images):
        arr = x.permute(1, 2, 0).numpy()
        img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=9)
        out[i] = 8 * len(buf.getvalue()) / x.numel()
    return out


def complexity_score(bpd: np.ndarray, png_bpd: np.ndarray) -> np.ndarray:
    """S(x) = bits/dim under the model − bits/dim under PNG: higher is more out of distribution."""
    return np.asarray(bpd) - np.asarray(png_bpd)


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """P(an outlier scores higher than an inlier), ties counting one half: the area under the ROC curve of
    "score > threshold means out of distribution" (Mann-Whitney U / (n_in n_out))."""
    x, y = np.asarray(in_scores, np.float64), np.asarray(out_scores, np.float64)
    if len(x) == 0 or len(y) == 0:
        raise ConfigError("AUROC needs scores on both sides")
    ranks = _average_ranks(np.concatenate([x, y]))
    u = ranks[len(x) :].sum() - len(y) * (len(y) + 1) / 2
    return float(u / (len(x) * len(y)))


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    sorted_a = a[order]
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], len(a)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2
    return ranks


def batch_deviations(bpd: np.ndarray, h: float, m: int, batches: int, seed: int) -> np.ndarray:
    """ε̂ = |mean bits/dim of m images drawn with replacement − Ĥ| for ``batches`` random batches: [batches]."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(bpd), size=(batches, m))
    return np.abs(np.asarray(bpd)[idx].mean(1) - h)


# -- scoring data sets, cached ---------------------------------------------------------------------------
@dataclass
class SetScores:
    name: str  # "mnist", "emoji (grey)"
    dataset: str
    split: str
    bpd: np.ndarray  # [N] per image
    png_bpd: np.ndarray  # [N]

    @property
    def score(self) -> np.ndarray:
        return complexity_score(self.bpd, self.png_bpd)


def set_images(model, dataset: str, split: str = "test", n: int = OOD_IMAGES) -> tuple[torch.Tensor, str]:
    """The first n images of ``dataset``'s split at the model's size and channels, and what to call them."""
    images = load_dataset(dataset, model.config.image_size).split(split)[:n]
    converted = images.shape[1] != model.config.channels
    name = f"{dataset} ({'grey' if model.config.channels == 1 else 'colour'})" if converted else dataset
    return to_channels(images, model.config.channels), name


def _file_name(dataset: str, split: str, n: int, k: int) -> str:
    return f"{safe_name(dataset)}-{split}-n{n}-k{k}.npz"


def _read_scores(path: Path, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A scores file of n images, or None when it is absent or not one (it may have been copied in, or damaged)."""
    z = read_small_npz(path, 16 * n + 1024)  # two float64 arrays and their headers, no more
    if z is None or not {"bpd", "png_bpd"} <= z.keys():
        return None
    bpd, png = z["bpd"], z["png_bpd"]
    ok = bpd.shape == png.shape == (n,) and bpd.dtype == png.dtype == np.float64
    return (bpd, png) if ok and np.isfinite(bpd).all() and np.isfinite(png).all() else None


def is_scored(model, dataset: str, split: str, n: int, k: int | None = None, shipped: Path | None = None) -> bool:
    """Whether ``score_set`` would read these scores instead of computing them."""
    k = model.default_eval_k if k is None else k
    n = min(n, len(load_dataset(dataset, model.config.image_size).split(split)))
    file = Path(model.digest()) / _file_name(dataset, split, n, k)
    return any(root and _read_scores(root / file, n) is not None for root in (cache_dir() / "ood", shipped))


def require_here(dataset: str) -> None:
    """Refuse, in a sentence, a data set that is not on this machine: the Likelihood page never downloads."""
    info = require_dataset(dataset)
    if info.needs_network:
        raise DatasetUnavailable(
            f"{dataset} is not on this machine; `genlab ood` downloads it first, the page does not"
        )


def candidate_sets(in_dataset: str) -> tuple[list[str], list[str]]:
    """The data sets here to compare a model with (offline, not image folders), and the ones to start with:
    MNIST for a Fashion-MNIST model (Nalisnick et al.'s pair) and the other way round, else both."""
    here = [d.name for d in list_datasets() if d.available and not d.needs_network and d.name != in_dataset]
    pair = {"fashion-mnist": ["mnist"], "mnist": ["fashion-mnist"]}.get(in_dataset, ["mnist", "fashion-mnist"])
    return here, [d for d in pair if d in here]


def score_set(
    model, dataset: str, split: str = "test", n: int = OOD_IMAGES, k: int | None = None, shipped: Path | None = None
) -> SetScores:
    """Per-image bits/dim (k-sample bound; default the family's: exact for a flow, IWAE k=100 for a VAE) and PNG
    complexity of the first n images of a split. Read instead when this model (its digest) scored them before:
    in the cache (``GENLAB_HOME/ood/``) or in ``shipped``, the scores a model folder carries in ``ood/``."""
    k = model.default_eval_k if k is None else k
    images, name = set_images(model, dataset, split, n)
    file = Path(model.digest()) / _file_name(dataset, split, len(images), k)
    for root in (cache_dir() / "ood", shipped):
        found = _read_scores(root / file, len(images)) if root else None
        if found:
            return SetScores(name, dataset, split, *found)
    bpd = per_image_bpd(model, images, k).numpy().astype(np.float64)
    png = png_bits_per_dim(images)
    try:
        _save_scores(cache_dir() / "ood" / file, bpd, png)
    except OSError:
        pass  # an unwritable cache only costs time
    return SetScores(name, dataset, split, bpd, png)


def ship_scores(model, report: OODReport, folder: Path) -> None:
    """Copy a report's scores into a model folder's ``ood/`` (``genlab ood --ship``), so that the Likelihood page
    shows them at once wherever the folder is copied (a Hub push leaves them out)."""
    for s in (*report.sets.values(), report.train):
        file = Path(model.digest()) / _file_name(s.dataset, s.split, len(s.bpd), report.k)
        _save_scores(Path(folder) / names.OOD / file, s.bpd, s.png_bpd)


def _save_scores(path: Path, bpd: np.ndarray, png: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npz(path, bpd=bpd, png_bpd=png)


# -- the report -------------------------------------------------------------------------------------------
@dataclass
class PairResult:
    """How well each score tells ``out`` from the in-distribution test set; AUROC 0.5 is chance, below it the
    score ranks the outliers as *more* in-distribution."""

    out: str
    auroc_bpd: float  # raw bits/dim as the score
    auroc_complexity: float  # S(x)
    auroc_typicality: float  # per image, |bpd − Ĥ| (the typicality test with batches of one)
    auroc_typicality_batch: float  # batches of TYPICALITY_BATCH
    flagged_batches: float  # share of the outlier set's batches past the 99% training threshold


@dataclass
class OODReport:
    model: str  # what was scored (a label)
    digest: str
    bpd_kind: str
    k: int
    in_dataset: str
    train_bpd: float  # Ĥ: mean bits/dim of training images
    threshold: float  # the typicality test's ε at TYPICALITY_QUANTILE, batches of TYPICALITY_BATCH (held-out half)
    false_alarms: float  # share of the batches of the in-distribution test set's other half past it
    sets: dict[str, SetScores] = field(repr=False)  # the in-distribution test set first
    pairs: list[PairResult]
    train: SetScores = field(repr=False)  # the training images Ĥ and the threshold come from

    def summary(self) -> list[dict]:
        """One row per data set: mean bits/dim and PNG bits/dim, and the AUROCs against the in-distribution set."""
        by_out = {p.out: p for p in self.pairs}
        rows = []
        for name, s in self.sets.items():
            p = by_out.get(name)
            rows.append(
                {
                    "data": name + (" (in)" if name == self.in_dataset else ""),
                    "images": len(s.bpd),
                    "mean bits/dim": float(s.bpd.mean()),
                    "mean PNG bits/dim": float(s.png_bpd.mean()),
                    "AUROC bits/dim": p.auroc_bpd if p else None,
                    "AUROC S(x)": p.auroc_complexity if p else None,
                    "AUROC typicality (1 image)": p.auroc_typicality if p else None,
                    f"AUROC typicality ({TYPICALITY_BATCH} images)": p.auroc_typicality_batch if p else None,
                    f"batches flagged at {TYPICALITY_QUANTILE:.0%}": p.flagged_batches if p else self.false_alarms,
                }
            )
        return rows

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("sets", "train")}
        d["table"] = self.summary()
        d["per_image"] = {n: {"bpd": s.bpd.tolist(), "png_bpd": s.png_bpd.tolist()} for n, s in self.sets.items()}
        return d

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path


def pair_result(inside: SetScores, outside: SetScores, h: float, threshold: float, seed: int = 0) -> PairResult:
    m, b = TYPICALITY_BATCH, TYPICALITY_BATCHES
    dev_in, dev_out = (batch_deviations(s.bpd, h, m, b, seed + i) for i, s in enumerate((inside, outside)))
    return PairResult(
        out=outside.name,
        auroc_bpd=auroc(inside.bpd, outside.bpd),
        auroc_complexity=auroc(inside.score, outside.score),
        auroc_typicality=auroc(np.abs(inside.bpd - h), np.abs(outside.bpd - h)),
        auroc_typicality_batch=auroc(dev_in, dev_out),
        flagged_batches=float((dev_out > threshold).mean()),
    )


def ood_report(
    model,
    in_dataset: str,
    out_datasets: list[str],
    n: int = OOD_IMAGES,
    k: int | None = None,
    label: str = "",
    on_set=None,
    shipped: Path | None = None,
) -> OODReport:
    """Score the in-distribution test set, each outlier set and n training images (for Ĥ and the threshold);
    ``on_set(name)`` is called before each is scored (the slow part, unless cached or ``shipped``)."""
    k = model.default_eval_k if k is None else k
    others = [d for d in dict.fromkeys(out_datasets) if d != in_dataset]
    if not others:
        raise ConfigError(f"name a data set other than {in_dataset}, the model's own, to compare with (--out mnist)")
    for d in (in_dataset, *others):  # before minutes of scoring: an unknown or absent one is one sentence now
        require_dataset(d)

    def scored(dataset: str, split: str) -> SetScores:
        if on_set:
            on_set(f"{dataset} {split}")
        return score_set(model, dataset, split, n, k, shipped)

    train, inside = scored(in_dataset, "train"), scored(in_dataset, "test")
    outs = [scored(d, "test") for d in others]
    # Ĥ from the training images; the threshold from batches of held-out images (the paper's validation set:
    # the first half of the model's own test set), its false alarms counted on the other half
    h, half = float(train.bpd.mean()), len(inside.bpd) // 2
    m, b = TYPICALITY_BATCH, TYPICALITY_BATCHES
    threshold = float(np.quantile(batch_deviations(inside.bpd[:half], h, m, b, 7), TYPICALITY_QUANTILE))
    false_alarms = float((batch_deviations(inside.bpd[half:], h, m, b, 0) > threshold).mean())
    return OODReport(
        model=label,
        digest=model.digest(),
        bpd_kind=model.bound_kind(k) if k > 1 else model.loss_bpd_kind,
        k=k,
        in_dataset=inside.name,
        train_bpd=h,
        threshold=threshold,
        false_alarms=false_alarms,
        sets={s.name: s for s in (inside, *outs)},
        pairs=[pair_result(inside, o, h, threshold) for o in outs],
        train=train,
    )


RAW, CORRECTED = "bits/dim", "S(x) = bits/dim − PNG bits/dim"
SCORES = {RAW: lambda s: s.bpd, CORRECTED: lambda s: s.score}  # per image; higher is more out of distribution


def ranked(report: OODReport, score: str, k: int = 8) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The k images of all scored sets that ``score`` ranks most in-distribution (lowest) and most out of it
    (highest), as (set name, index in that set)."""
    pairs = [(name, i) for name, s in report.sets.items() for i in range(len(s.bpd))]
    values = np.concatenate([SCORES[score](s) for s in report.sets.values()])
    order = np.argsort(values, kind="stable")
    return [pairs[i] for i in order[:k]], [pairs[i] for i in order[::-1][:k]]


# -- one image from outside ------------------------------------------------------------------------------
def image_from_bytes(data: bytes, size: int, channels: int) -> torch.Tensor:
    """An uploaded PNG or JPEG -> uint8 [1, channels, size, size]: the whole image resized (not cropped), grey or RGB
    as the model is, transparency composited onto white. Refused in one sentence when too big or unreadable."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadFile(f"the image is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    too_big = None
    try:
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as img:  # no other decoder is ever reached
            if img.width * img.height > MAX_UPLOAD_PIXELS:  # from the header, before a pixel is decoded
                too_big = f"the image is {img.width}×{img.height} pixels; the limit is 4096×4096 pixels"
            else:
                img.load()
                rgba = img.convert("RGBA")
    except Image.DecompressionBombError:  # PIL refuses to open what declares far more pixels than that
        raise BadFile("the image declares far more pixels than it could hold; the limit is 4096×4096 pixels") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001  (a damaged file raises OSError, SyntaxError, ValueError, ... from PIL)
        raise BadFile(f"that file is not a PNG or JPEG image this app can read ({type(e).__name__})") from None
    if too_big:
        raise BadFile(too_big)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB" if channels == 3 else "L")
    arr = np.asarray(rgb.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    x = torch.from_numpy(arr.copy())
    return (x.permute(2, 0, 1) if x.ndim == 3 else x[None])[None]


def score_image(model, image: torch.Tensor, k: int | None = None) -> tuple[float, float]:
    """(bits/dim, PNG bits/dim) of one uint8 image [1, C, S, S] at the model's size."""
    k = model.default_eval_k if k is None else k
    return float(per_image_bpd(model, image, k)[0]), float(png_bits_per_dim(image)[0])
