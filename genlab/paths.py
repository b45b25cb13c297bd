"""Where genlab keeps caches and runs, and how names become safe path components.

``GENLAB_HOME`` (default ``~/.cache/genlab``) holds caches; a Space points it at its
persistent or scratch disk. Every user-supplied name that becomes part of a path goes
through ``safe_name`` first.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .errors import ConfigError
from .settings import settings


def cache_dir() -> Path:
    return settings().home


def safe_name(name: str, max_len: int = 120) -> str:
    """A filesystem-safe, traversal-free component: 'folder:/a/../b' -> 'folder-a-..-b' style."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    s = s.replace("..", "-")
    if not s:
        raise ConfigError(f"{name!r} leaves nothing usable as a file name")
    if len(s) > max_len:  # keep long names unique with a short hash of the original
        s = s[: max_len - 9] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return s
