"""Every environment variable genlab reads, in one place, with its type, default and meaning.

``settings()`` reads the environment on each call (it is cheap), so tests and a Space's
configuration take effect without restarting anything. A malformed value is refused with
a sentence naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

_FALSE = ("", "0", "false", "no", "off")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    home: Path  # GENLAB_HOME: caches (data sets, FID statistics, the pulled-models list)
    runs: Path  # GENLAB_RUNS: the app's runs folder
    checkpoints: Path  # GENLAB_CHECKPOINTS: the shipped models the app lists first
    data_dir: Path  # GENLAB_DATA_DIR: where public mode lets folder: data sets live
    max_runs: int  # GENLAB_MAX_RUNS: runs that train at once; more wait in the queue
    app_threads: int | None  # GENLAB_APP_THREADS: the app's intra-op CPU threads (public mode: 1; else torch's)
    run_nice: int  # GENLAB_RUN_NICE: how much lower than the app's the CPU priority of a run it launches is
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
    max_member_bytes: int  # GENLAB_MAX_MEMBER_BYTES: a larger member of a .zip data set is skipped unread
    max_pull_bytes: int  # GENLAB_MAX_PULL_BYTES: a Hub repo's genlab files may total at most this much
    public_max_pull_bytes: int  # GENLAB_PUBLIC_MAX_PULL_BYTES: ... in public mode (instead of the above)
    max_params: int  # GENLAB_MAX_PARAMS: parameters of any model genlab builds (genlab.models.sizing)
    max_model_bytes: int  # GENLAB_MAX_MODEL_BYTES: estimated memory of a model and one batch (default: half the RAM)
    public_max_params: int  # GENLAB_PUBLIC_MAX_PARAMS: ... in public mode
    public_max_model_bytes: int  # GENLAB_PUBLIC_MAX_MODEL_BYTES: ... in public mode
    public_max_batch: int  # GENLAB_PUBLIC_MAX_BATCH: batch size of a run, and images per evaluation batch
    public_max_image_size: int  # GENLAB_PUBLIC_MAX_IMAGE_SIZE: pixels per side of a run
    public_max_fid_samples: int  # GENLAB_PUBLIC_MAX_FID_SAMPLES: K of FID@K, per FID
    public_max_fids: int  # GENLAB_PUBLIC_MAX_FIDS: FID evaluations per run
    public_max_evals: int  # GENLAB_PUBLIC_MAX_EVALS: evaluations (and checkpoints) per run
    public_max_eval_images: int  # GENLAB_PUBLIC_MAX_EVAL_IMAGES: test images per evaluation of a run
    public_max_bound_images: int  # GENLAB_PUBLIC_MAX_BOUND_IMAGES: test images of Compare's k-sample bound


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _FALSE


def _number(name: str, default: float, kind: type = int) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(
            f"environment variable {name} must be {'a whole' if kind is int else 'a'} number, got {raw!r}"
        ) from None
    if not value > 0:
        raise ConfigError(f"environment variable {name} must be positive, got {raw!r}")
    return value


def _niceness(name: str, default: int) -> int:
    """A ``nice`` increment: 0 (the caller's priority) to 19 (the lowest)."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    if not (raw.isdigit() and int(raw) <= 19):
        raise ConfigError(f"environment variable {name} must be a whole number from 0 to 19, got {raw!r}")
    return int(raw)


def _path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name) or default).expanduser()


def _half_the_memory() -> int:
    """Half of this machine's RAM (a GPU box's limit is usually its GPU: set GENLAB_MAX_MODEL_BYTES there)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX: a laptop's worth
        return 8 * 2**30


def settings() -> Settings:
    home = _path("GENLAB_HOME", Path.home() / ".cache" / "genlab")
    weights = os.environ.get("GENLAB_INCEPTION_WEIGHTS")
    return Settings(
        home=home,
        runs=_path("GENLAB_RUNS", Path("runs")).resolve(),
        checkpoints=_path("GENLAB_CHECKPOINTS", REPO_ROOT / "checkpoints"),
        data_dir=_path("GENLAB_DATA_DIR", home / "data"),
        max_runs=int(_number("GENLAB_MAX_RUNS", 1)),
        app_threads=int(_number("GENLAB_APP_THREADS", 0)) or None,
        run_nice=_niceness("GENLAB_RUN_NICE", 10),
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
        max_member_bytes=int(_number("GENLAB_MAX_MEMBER_BYTES", 256 * 2**20)),
        max_pull_bytes=int(_number("GENLAB_MAX_PULL_BYTES", 512 * 2**20)),
        public_max_pull_bytes=int(_number("GENLAB_PUBLIC_MAX_PULL_BYTES", 64 * 2**20)),
        max_params=int(_number("GENLAB_MAX_PARAMS", 200_000_000)),
        max_model_bytes=int(_number("GENLAB_MAX_MODEL_BYTES", _half_the_memory())),
        public_max_params=int(_number("GENLAB_PUBLIC_MAX_PARAMS", 5_000_000)),
        public_max_model_bytes=int(_number("GENLAB_PUBLIC_MAX_MODEL_BYTES", 2 * 2**30)),
        public_max_batch=int(_number("GENLAB_PUBLIC_MAX_BATCH", 256)),
        public_max_image_size=int(_number("GENLAB_PUBLIC_MAX_IMAGE_SIZE", 64)),
        public_max_fid_samples=int(_number("GENLAB_PUBLIC_MAX_FID_SAMPLES", 1000)),
        public_max_fids=int(_number("GENLAB_PUBLIC_MAX_FIDS", 5)),
        public_max_evals=int(_number("GENLAB_PUBLIC_MAX_EVALS", 50)),
        public_max_eval_images=int(_number("GENLAB_PUBLIC_MAX_EVAL_IMAGES", 1000)),
        public_max_bound_images=int(_number("GENLAB_PUBLIC_MAX_BOUND_IMAGES", 200)),
    )


__all__ = ["Settings", "settings"]
