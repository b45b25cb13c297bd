"""Text for people: how runs and figures are shown by the CLI's tables and the app's pages."""

from __future__ import annotations

import time

from .data import DatasetInfo
from .runs.summary import RunSummary


def count(n: int, noun: str) -> str:
    """``count(1, "thread")`` -> "1 thread", ``count(2, "thread")`` -> "2 threads"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def duration(seconds: float | None) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds is not None else "-"


def about(seconds: float) -> str:
    """A wall time as a person says it: "about 1 min", "about 17 min", "about 1 h 10 min"."""
    minutes = max(1, round(seconds / 60))
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60} h {minutes % 60} min"


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def run_row(s: RunSummary) -> dict[str, str]:
    """The run list's columns as text (``genlab runs`` and the Train page's table)."""
    return {
        "run": s.name,
        "model": s.model,
        "dataset": s.dataset,
        "status": str(s.status),
        "step": f"{s.step}/{s.total_steps}" if s.total_steps else str(s.step),
        "processes": str(s.processes),
        "images/s": f"{s.images_per_s:.0f}" if s.images_per_s else "-",  # smoothed; a finished run's mean
        "ETA": duration(s.eta_s),
        "test bpd": f"{s.test_bpd:.3f}" if s.test_bpd is not None else "-",
        "FID@K": f"{s.fid:.1f}@{s.fid_samples}" if s.fid is not None else "-",
        "disk": megabytes(s.disk_bytes),
        "warnings": str(len(s.warnings)) if s.warnings else "",
    }


def dataset_row(i: DatasetInfo) -> dict[str, str]:
    """One line of ``genlab datasets``: whether the data set is here, how many images, where it comes from."""
    here = ("needs internet" if i.needs_network else "yes") if i.available else "no"
    return {
        "dataset": i.name,
        "here": here,
        "images": str(i.count) if i.count else "?",
        "source / what to do": i.source if i.available else i.reason,
    }


def text_table(rows: list[dict[str, str]]) -> str:
    """Left-aligned columns under their names."""
    cells = [tuple(rows[0])] + [tuple(r.values()) for r in rows]
    widths = [max(len(row[c]) for row in cells) for c in range(len(cells[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells)
