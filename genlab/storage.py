"""Files that survive a crash: atomic replacement and single-writer locks, in one place.

Every file genlab replaces (run.json, configs, weights, cached statistics and data sets) goes
through :func:`atomic_write` (or one of its wrappers), so a process killed at any instant leaves
the old file or the new one, never half of one, and no temporary file behind. Locks are
``filelock`` locks (``flock`` underneath): the kernel releases a dead process's lock, so a crash
never leaves a stale one.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from filelock import FileLock, Timeout


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save_npz(path: str | os.PathLike, **arrays) -> None:
    """``numpy.savez`` to ``path``, atomically (numpy would add '.npz' to a temporary name; a buffer avoids that)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_small_npz(path: str | os.PathLike, max_bytes: int) -> dict[str, np.ndarray] | None:
    """The arrays of an .npz that ``atomic_save_npz`` could have written, or None when the file is absent, damaged
    or not one: every member stored uncompressed (as ``numpy.savez`` writes them) and at most ``max_bytes`` in all,
    checked from the zip directory before a byte is read, since a compressed member may unpack to any size."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if any(i.compress_type != zipfile.ZIP_STORED for i in infos) or sum(i.file_size for i in infos) > max_bytes:
                return None
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # noqa: BLE001  (whatever a damaged file raises, a cache entry that is not there)
        return None


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def try_lock(path: str | os.PathLike) -> FileLock | None:
    """The held lock at ``path``, or None if another open handle holds it. Release with ``.release()``."""
    lock = FileLock(str(path), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


def is_locked(path: str | os.PathLike) -> bool:
    """Whether some live process holds the lock at ``path`` (probed without keeping it)."""
    if not Path(path).exists():
        return False
    lock = try_lock(path)
    if lock is None:
        return True
    lock.release()
    return False
