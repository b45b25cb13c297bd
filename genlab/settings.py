"""Every environment variable genlab reads, in one place, with its type, default and meaning.

``settings()`` reads the environment on each call (it is cheap), so tests and a Space's
configuration take effect without restarting anything. A malformed value is refused with
a sentence naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_FALSE = ("", "0", "false", "no", "off")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    home: Path  # GENLAB_HOME: caches (data sets, FID statistics, the pulled-models list)
    runs: Path  # GENLAB_RUNS: the app's runs folder
    checkpoints: Path  # GENLAB_CHECKPOINTS: the shipped models the app lists first
    data_dir: Path  # GENLAB_DATA_DIR: where public mode lets folder: data sets live
    max_runs: int  # GENLAB_MAX_RUNS: runs that train at once; more wait in the queue
    public: bool  # GENLAB_PUBLIC: a hosted app (genlab.public)
    public_max_steps: int  # GENLAB_PUBLIC_MAX_STEPS: per-run cap in public mode
    public_max_minutes: float  # GENLAB_PUBLIC_MAX_MINUTES: per-run training-time cap in public mode
    offline: bool  # GENLAB_OFFLINE or HF_HUB_OFFLINE: data sets and FID weights never download
    hub_offline: bool  # HF_HUB_OFFLINE: huggingface_hub's own switch (the Hub cache only)
    hub_timeout: float  # GENLAB_HUB_TIMEOUT: seconds before a Hub request gives up
    hub_org: str  # GENLAB_HUB_ORG: the organisation of the shipped checkpoints' repos
    inception_weights: Path | None  # GENLAB_INCEPTION_WEIGHTS: FID's Inception weights file
    fid_random_weights: bool  # GENLAB_FID_RANDOM_WEIGHTS: tests only; FIDs are labelled as meaningless
    fashion_mnist_dir: Path  # GENLAB_FASHION_MNIST_DIR: the Debian package's files
    max_image_pixels: int  # GENLAB_MAX_IMAGE_PIXELS: larger images are skipped unread (decompression bombs)
    max_archive_bytes: int  # GENLAB_MAX_ARCHIVE_BYTES: a .zip data set may unpack to at most this much
    max_archive_files: int  # GENLAB_MAX_ARCHIVE_FILES: ... and hold at most this many files


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _FALSE


def _number(name: str, default: float, kind: type = int) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(
            f"environment variable {name} must be {'a whole' if kind is int else 'a'} number, got {raw!r}"
        ) from None
    if not value > 0:
        raise ValueError(f"environment variable {name} must be positive, got {raw!r}")
    return value


def _path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name) or default).expanduser()


def settings() -> Settings:
    home = _path("GENLAB_HOME", Path.home() / ".cache" / "genlab")
    weights = os.environ.get("GENLAB_INCEPTION_WEIGHTS")
    return Settings(
        home=home,
        runs=_path("GENLAB_RUNS", Path("runs")).resolve(),
        checkpoints=_path("GENLAB_CHECKPOINTS", REPO_ROOT / "checkpoints"),
        data_dir=_path("GENLAB_DATA_DIR", home / "data"),
        max_runs=int(_number("GENLAB_MAX_RUNS", 1)),
        public=_flag("GENLAB_PUBLIC"),
        public_max_steps=int(_number("GENLAB_PUBLIC_MAX_STEPS", 2000)),
        public_max_minutes=float(_number("GENLAB_PUBLIC_MAX_MINUTES", 10.0, float)),
        offline=_flag("GENLAB_OFFLINE") or _flag("HF_HUB_OFFLINE"),
        hub_offline=_flag("HF_HUB_OFFLINE"),
        hub_timeout=float(_number("GENLAB_HUB_TIMEOUT", 20.0, float)),
        hub_org=os.environ.get("GENLAB_HUB_ORG") or "genlab",
        inception_weights=Path(weights).expanduser() if weights else None,
        fid_random_weights=os.environ.get("GENLAB_FID_RANDOM_WEIGHTS") == "1",
        fashion_mnist_dir=_path("GENLAB_FASHION_MNIST_DIR", Path("/usr/share/datasets/fashion-mnist")),
        max_image_pixels=int(_number("GENLAB_MAX_IMAGE_PIXELS", 40_000_000)),
        max_archive_bytes=int(_number("GENLAB_MAX_ARCHIVE_BYTES", 4 * 2**30)),
        max_archive_files=int(_number("GENLAB_MAX_ARCHIVE_FILES", 200_000)),
    )


__all__ = ["Settings", "settings"]
