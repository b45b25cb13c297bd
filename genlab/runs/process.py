"""The processes that train runs: whether one is alive (and still the same program), and what it ran on."""

from __future__ import annotations

import os
import platform

import numpy
import torch
import torchvision

from ..version import __version__


def package_versions() -> dict:

    return {
        "genlab": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks after boot (/proc/PID/stat field 22); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid, started: int | None = None) -> bool:
    """Whether ``pid`` is a live process, and the same one (``started``: its start time when recorded)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if started is not None and process_start(pid) not in (None, started):
        return False  # the PID now belongs to another program
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
