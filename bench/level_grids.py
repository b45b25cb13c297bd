"""Per-level temperature grids for docs/img: one row per setting, the same unit noise in every row.

A multi-scale flow's latent levels (``model.latent_levels``, finest first) each get their own temperature
(``model.sample(n, temperature=[...])``); with the same seed every row starts from the same unit noise, so a
row differs from the first only by the temperatures. Writes ``docs/img/<model>-levels.png``.

    python bench/level_grids.py checkpoints/realnvp-fashion-32 checkpoints/realnvp-mnist-32 checkpoints/realnvp-emoji-32
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab import load_model  # noqa: E402
from genlab.explore import grid, sample  # noqa: E402


def settings(levels: int, card: float) -> list[tuple[float, ...]]:
    """All at 1 and at the card's T; the coarse half cooled, then the fine half; the coarsest level alone off."""
    half = levels // 2
    return [
        (1.0,) * levels,
        (card,) * levels,
        (1.0,) * half + (0.5,) * (levels - half),
        (0.5,) * half + (1.0,) * (levels - half),
        (1.0,) * (levels - 1) + (0.0,),
        (0.0,) * (levels - 1) + (1.0,),
    ]


def level_figure(model, rows: list[tuple[float, ...]], n: int, seed: int, scale: int) -> Image.Image:
    strips = [grid(sample(model, n, t, seed), nrow=n, scale=scale) for t in rows]
    label_w = 150
    out = Image.new("RGB", (label_w + strips[0].width, sum(s.height for s in strips) + 18), "white")
    draw = ImageDraw.Draw(out)
    shapes = ", ".join("x".join(map(str, s)) for s in model.latent_levels)  # PIL's default font has no ×
    draw.text((4, 2), f"T per level, finest first ({shapes})", fill="black")
    y = 18
    for t, strip in zip(rows, strips):
        draw.text((4, y + strip.height // 2 - 6), "T = " + ", ".join(f"{v:g}" for v in t), fill="black")
        out.paste(strip, (label_w, y))
        y += strip.height
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/img")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    for spec in args.models:
        model = load_model(spec)
        card = float(json.loads((Path(spec) / "metrics.json").read_text())["samples"]["temperature"])
        fig = level_figure(
            model, settings(len(model.latent_levels), card), args.n, args.seed, max(1, 64 // model.config.image_size)
        )
        path = Path(args.out) / f"{Path(spec).name}-levels.png"
        fig.save(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
