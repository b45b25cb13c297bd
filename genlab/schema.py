"""What a file genlab reads must look like, checked before anything uses it.

Every JSON file genlab reads comes from outside the running process: a run directory another
process writes, a checkpoint a person copied, a repo pulled from the Hub. So each is read here:
its size is checked before a byte is parsed (:func:`read_json`), and the fields genlab uses are
checked for type and range (:func:`check_fields` with a spec below; the dataclasses of
``genlab.config`` check theirs through :func:`genlab.config.check`). A value that fails is one
sentence naming the file and the field, raised as the caller's error type, so that one bad file
makes one bad entry and nothing else.

A spec maps a field to what it must be: :data:`NUMBER` (a finite int or float, not a bool),
:data:`COUNT` (an int from 0 to :data:`MAX_COUNT`), :data:`TEXT` (a string of at most :data:`MAX_TEXT` characters),
:data:`FLAG` (a bool), or a nested spec for an object. Fields a spec does not name are kept
unchecked, and genlab does not read them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .errors import BadFile

MAX_JSON_BYTES = 1 << 20  # config.json, run.json, metrics.json, trainer_state.json, the pulled-models list
MAX_LOG_BYTES = 256 << 20  # metrics.jsonl: a row is about 300 bytes, so this is nearly a million rows
MAX_TEXT = 10_000  # characters of any string genlab shows or uses as a name
NUMBER, COUNT, TEXT, FLAG = "number", "count", "text", "flag"
MAX_COUNT = 2**53  # past this a count is no count of anything (and past 2^63 a tracker's int64 step overflows)


def short(v) -> str:
    """A value for an error line: never the whole of a 2 MB string."""
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def read_json(path: str | os.PathLike, error: type[Exception] = BadFile, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """A JSON object from ``path``, its size checked before it is read; FileNotFoundError passes through."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{path} is {size:,} bytes, more than the {max_bytes:,} a genlab file may hold")
    if not path.is_file():  # a folder, or a device such as /dev/zero (whose size says 0 and which never ends)
        raise error(f"{path} is not a regular file")
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)  # bounded even if the file grows while it is read
    if len(data) > max_bytes:
        raise error(f"{path} is more than the {max_bytes:,} bytes a genlab file may hold")
    try:
        d = json.loads(data)
    except (ValueError, RecursionError) as e:  # not UTF-8, not JSON, too deep, an integer of 5,000 digits
        raise error(f"{path} is not valid JSON ({str(e)[:100]})") from None
    if not isinstance(d, dict):
        raise error(f"{path} holds a JSON {type(d).__name__}, not an object")
    return d


def problem(value, kind) -> str | None:
    """What is wrong with ``value`` as a ``kind`` (NUMBER, COUNT, TEXT, FLAG), or None."""
    if kind == FLAG:
        return None if isinstance(value, bool) else "must be true or false"
    if kind == TEXT:
        if not isinstance(value, str):
            return "must be a string"
        return None if len(value) <= MAX_TEXT else f"is a string of {len(value):,} characters (at most {MAX_TEXT:,})"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number"
    if kind == COUNT and not (isinstance(value, int) and 0 <= value <= MAX_COUNT):
        return "must be a whole number from 0 to 2^53"
    return None if math.isfinite(value) else "must be a finite number"


def check_fields(d: dict, spec: dict, source: str, error: type[Exception] = BadFile) -> dict:
    """``d`` itself, after checking that each field ``spec`` names is absent, null or what the spec says."""
    for key, kind in spec.items():
        value = d.get(key)
        if value is None:
            continue
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise error(f"{source}: field '{key}' must be an object, got {short(value)}")
            check_fields(value, kind, f"{source} '{key}'", error)
        elif (why := problem(value, kind)) is not None:
            raise error(f"{source}: field '{key}' {why}, got {short(value)}")
    return d


# -- the specs of the files that are not dataclasses ------------------------------------------------
MODEL_METRICS = {  # a model folder's metrics.json (genlab.export): what the pages and the model card read
    "dataset": TEXT,
    "dataset_credit": TEXT,
    "model_type": TEXT,
    "image_size": COUNT,
    "num_parameters": COUNT,
    "train_images": COUNT,
    "test_images": COUNT,
    "test_bpd": NUMBER,
    "test_bpd_kind": TEXT,
    "iwae_images": COUNT,
    "elbo_bpd_iwae_images": NUMBER,
    "fid": NUMBER,
    "fid_samples": COUNT,
    "fid_temperature": NUMBER,
    "fid_reference": TEXT,
    "fid_weights": TEXT,
    "fid_seconds": NUMBER,
    "genlab_version": TEXT,
    "recipe": TEXT,
    "recipe_stages": TEXT,  # one command line per stage, when a recipe was made in more than one
    "samples": {"temperature": NUMBER, "seed": COUNT, "n": COUNT},
    "train": {
        "steps": COUNT,
        "epochs": NUMBER,
        "train_seconds": NUMBER,
        "wall_seconds": NUMBER,
        "images_per_s_median": NUMBER,
        "device": TEXT,
        "threads": COUNT,
        "precision": TEXT,
        "batch_size": COUNT,
        "lr": NUMBER,
        "command": TEXT,
        "torch": TEXT,
        "genlab": TEXT,
    },
}

BEST_METRICS = {"step": COUNT, "test_bpd": NUMBER, "dataset": TEXT}  # RUN/best/metrics.json

TRAINER_STATE = {"step": COUNT, "elapsed": NUMBER, "side_elapsed": NUMBER, "nonfinite_total": COUNT}


def check_bound_keys(d: dict, source: str, error: type[Exception] = BadFile) -> dict:
    """metrics.json's ``iwae_k{K}_bpd`` fields (one per K evaluated) are numbers too."""
    extra = {k: NUMBER for k in d if k.startswith("iwae_k") and k.endswith("_bpd")}
    return check_fields(d, extra, source, error)


__all__ = ["BadFile", "read_json", "check_fields", "problem", "MODEL_METRICS", "TRAINER_STATE", "BEST_METRICS"]
