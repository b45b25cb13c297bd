"""The checkpoints that ship in ``checkpoints/``: how each is trained, where it lives on the Hub.

This table is the one place that names them. ``python -m genlab checkpoints`` (``make checkpoints``)
retrains every one from scratch with exactly these arguments and exports it with its figures
(``genlab.export``); ``python -m genlab publish`` pushes them to their repo ids.

The emoji models train on ``emoji-faces`` (the 109 round smileys of Twemoji): on all 4,009 emoji a
CPU-sized model learns colours and layouts but samples nothing a person can name (see
docs/img/vae-emoji-samples.png), while on one homogeneous kind of picture it draws faces.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

HUB_ORG = os.environ.get("GENLAB_HUB_ORG", "genlab")


@dataclass(frozen=True)
class Recipe:
    name: str                 # folder under checkpoints/ and repo name on the Hub
    train: tuple[str, ...]    # `python -m genlab train` arguments, from scratch
    temperature: float        # the temperature of its grid: Home and the model card show it there
    fid_ref_n: int = 10000    # training images in the FID reference statistics

    @property
    def repo_id(self) -> str:
        return f"{HUB_ORG}/{self.name}"


RECIPES: tuple[Recipe, ...] = (
    Recipe("vae-mnist-32", ("vae", "--dataset", "mnist", "--image-size", "32", "--batch-size", "128",
                            "--max-steps", "6000", "--max-minutes", "14", "--eval-every", "500", "--eval-batches", "20"),
           temperature=0.8),
    Recipe("realnvp-mnist-32", ("realnvp", "--dataset", "mnist", "--image-size", "32", "--batch-size", "64",
                                "--max-steps", "2500", "--max-minutes", "85", "--eval-every", "500",
                                "--eval-batches", "20"),
           temperature=0.6),
    Recipe("vae-emoji-32", ("vae", "--dataset", "emoji-faces", "--image-size", "32", "--batch-size", "32",
                            "--max-steps", "10000", "--max-minutes", "10", "--eval-every", "1000"),
           temperature=0.8),
    Recipe("vae-emoji-64", ("vae", "--dataset", "emoji-faces", "--image-size", "64", "--batch-size", "32",
                            "--max-steps", "8000", "--max-minutes", "25", "--eval-every", "1000"),
           temperature=0.8),
    Recipe("realnvp-emoji-32", ("realnvp", "--dataset", "emoji-faces", "--image-size", "32", "--batch-size", "32",
                                "--max-steps", "1800", "--max-minutes", "35", "--eval-every", "300"),
           temperature=0.6),
)


def recipe(name: str) -> Recipe:
    for r in RECIPES:
        if r.name == name:
            return r
    raise ValueError(f"no shipped checkpoint is called {name!r}; they are {[r.name for r in RECIPES]}")
