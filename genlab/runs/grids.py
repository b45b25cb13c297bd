"""A run's sample and reconstruction grids: written whole, thinned as the run goes, read safely.

A page that polls a live run may open the newest grid at any instant, so every grid is written to a
temporary file and renamed into place (``genlab.storage``): a reader sees the old file or the new one,
never half of one. A run keeps at most ``MAX_GRIDS`` grids of each kind: when a new one would pass the
cap, every second older grid is deleted (the first and the newest stay), so the history stays evenly
spread over the run and a run of any length writes a bounded number of PNGs.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.utils import save_image

from .. import names
from ..storage import atomic_write_bytes

MAX_GRIDS = 16  # per kind (samples, reconstructions): at most 32 PNGs per run
# the largest grid a page shows: 64 images of 256×256 with padding fit; a 30000×30000 PNG of 1 MB does not
MAX_GRID_PIXELS = 2100 * 2100
MAX_GRID_BYTES = 16 * 2**20


def png_of_grid(images: torch.Tensor, nrow: int) -> bytes:
    """Images [N, C, H, W] in [0, 1] as one PNG grid (1-pixel padding)."""
    buf = io.BytesIO()
    save_image(images, buf, format="PNG", nrow=nrow, padding=1)
    return buf.getvalue()


def write_grid(path: Path, images: torch.Tensor, nrow: int) -> bytes:
    """Write a grid atomically, then thin the older grids of the same kind (same name prefix); the PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    png = png_of_grid(images, nrow)
    atomic_write_bytes(path, png)
    thin(path.parent, path.name.split("-")[0])
    return png


def thin(folder: Path, prefix: str, keep: int = MAX_GRIDS) -> list[Path]:
    """Delete every second grid ``prefix-*.png`` between the first and the newest while more than ``keep``
    remain; return what was deleted."""
    grids = sorted(folder.glob(f"{prefix}-*.png"))
    deleted = []
    while len(grids) > keep:
        drop = grids[1:-1:2]
        for p in drop:
            p.unlink(missing_ok=True)
        deleted += drop
        grids = [g for g in grids if g not in drop]
    return deleted


def readable(path: Path) -> bytes | None:
    """The file's bytes if they decode as a complete image of at most ``MAX_GRID_PIXELS``, else None (missing,
    cut short, not an image, or too large to show: a pulled repo's samples.png may be a decompression bomb; not
    a regular file: a FIFO or a link to /dev/zero says 0 bytes and never ends)."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_GRID_BYTES:
            return None
        with path.open("rb") as f:
            data = f.read(MAX_GRID_BYTES + 1)  # bounded even if the file grows while it is read
        if len(data) > MAX_GRID_BYTES:
            return None
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_GRID_PIXELS:  # from the header, before a pixel is decoded
                return None
            im.load()
        return data
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def newest_readable(folder: Path, prefix: str = "step") -> tuple[Path, bytes] | None:
    """The newest grid that reads as an image, falling back to older ones; None if there is none."""
    grids = sorted(folder.glob(f"{prefix}-*.png"), reverse=True) if folder.is_dir() else []
    for p in grids:
        data = readable(p)
        if data is not None:
            return p, data
    return None


GRID_FILE = re.compile(r"(step|recon)-(\d{1,9})\.png")  # what write_grid names them (RunDir.sample_grid)
GRID_KINDS = {"step": "samples", "recon": "reconstructions"}


def grids_on_disk(folder: Path, last_step: int) -> list[tuple[int, str, bytes]]:
    """(step, "samples" or "reconstructions", PNG) of every readable grid of a run folder, in step order; for a
    model folder, its ``samples.png`` at ``last_step``. What the trackers are sent when they catch up."""
    found = []
    samples = folder / names.RUN_SAMPLES
    for p in sorted(samples.glob("*.png")) if samples.is_dir() else []:
        m = GRID_FILE.fullmatch(p.name)
        if m and (png := readable(p)) is not None:
            found.append((int(m.group(2)), GRID_KINDS[m.group(1)], png))
    if not found and (png := readable(folder / names.SAMPLES)) is not None:
        found.append((last_step, "samples", png))
    return sorted(found, key=lambda g: g[0])
