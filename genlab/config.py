"""Config dataclasses that declare each setting once: type, default, help text, bounds.

A field made with :func:`setting` carries its help text and its bounds in ``dataclasses.field``
metadata. From that one declaration genlab builds the command-line flags (:func:`add_arguments`),
checks values (:func:`check`) and reads saved configs (:func:`from_dict`), so a new option is one
line in one dataclass and the CLI, the app's launcher and the run directory all follow.

One policy for keys a dataclass does not know, everywhere: they are refused with a sentence
naming them (a config written by a newer genlab or another model must not load as something else).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import types
import typing
from typing import Any

from .errors import ConfigError
from .schema import FLAG, TEXT, problem, short


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    factory=dataclasses.MISSING,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    flag: bool = True,
    resumable: bool = False,
    choices: tuple | None = None,
    aliases: tuple[str, ...] = (),
):
    """A dataclass field with its help text and bounds.

    ``min``/``max`` are inclusive, ``above`` is exclusive; ``None`` values skip the check (they mean
    "not set"). ``flag=False`` keeps it off the generated command line. ``resumable=True`` marks a
    setting that may change when a run is resumed. ``choices`` lists the values allowed; ``aliases`` are
    more flags for it.
    """
    meta = {
        "help": help,
        "min": min,
        "max": max,
        "above": above,
        "flag": flag,
        "resumable": resumable,
        "choices": choices,
        "aliases": aliases,
    }
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(tp) -> type:
    """``int | None`` -> int; ``float`` -> float."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = [a for a in typing.get_args(tp) if a is not type(None)][0]
    return typing.get_origin(tp) or tp


@functools.cache  # typing.get_type_hints evaluates every annotation: a sixth of the app's CPU per page view
def field_types(cls) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: _base_type(hints[f.name]) for f in dataclasses.fields(cls)}


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What a form needs to offer one field of a config: its kind, bounds, choices and help, as declared."""

    name: str
    kind: type  # int, float, bool or str
    help: str
    low: float | None  # the smallest value to offer (``above`` is exclusive: the config refuses it itself)
    high: float | None
    choices: tuple | None
    optional: bool  # None is allowed (a form offers 0 for "off")
    default: Any

    def widget_bounds(self) -> dict:
        """``min_value``/``max_value`` for a number widget, of the field's own type (0 stands for None)."""
        low = 0 if self.optional else self.low
        cast = int if self.kind is int else float
        return {k: cast(v) for k, v in (("min_value", low), ("max_value", self.high)) if v is not None}


def field_spec(cls, name: str) -> FieldSpec:
    """``cls``'s field ``name`` as declared with ``setting()``: what a form generates its widget from."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    m = f.metadata
    low = m.get("min") if m.get("min") is not None else m.get("above")
    return FieldSpec(
        name=name,
        kind=field_types(cls)[name],
        help=m.get("help", ""),
        low=low,
        high=m.get("max"),
        choices=m.get("choices"),
        optional=f.default is None,
        default=f.default,
    )


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _type_problem(v, tp) -> str | None:
    """What is wrong with ``v`` as a value of a field of type ``tp``; None when it fits. A nested dataclass
    may still be the JSON object it is read from, and a string enum the word (its owner converts them)."""
    if dataclasses.is_dataclass(tp):
        return None if isinstance(v, (tp, dict)) else "must be an object"
    if isinstance(tp, type) and issubclass(tp, str):  # str itself, or a string enum such as RunStatus
        return problem(v, TEXT)
    if tp is bool:
        return problem(v, FLAG)
    if tp in (dict, list) and not isinstance(v, tp):
        return f"must be a JSON {'object' if tp is dict else 'list'}"
    if tp is list and not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v):
        return "must be a list of strings and numbers"
    return None


def _num(x: float) -> str:
    """A bound as people write it: 1024, 0.4999, 4,294,967,295 (never 4.29497e+09)."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def check(obj) -> None:  # noqa: C901 - to split (one screen per function)
    """Raise ConfigError for the first value outside its field's declared type or bounds."""
    types_ = field_types(type(obj))
    for f in dataclasses.fields(obj):
        v, m, tp = getattr(obj, f.name), f.metadata, types_[f.name]
        if v is None:
            continue
        if (why := _type_problem(v, tp)) is not None:
            raise ConfigError(f"{f.name} {why}, got {short(v)}")
        if m.get("choices") is not None and v not in m["choices"]:
            raise ConfigError(f"{f.name} must be one of {', '.join(map(str, m['choices']))}, got {v!r}")
        if tp in (int, float) and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ConfigError(f"{f.name} must be a number, got {v!r}")
        if tp is int and isinstance(v, float):
            if not v.is_integer():
                raise ConfigError(f"{f.name} must be a whole number, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{f.name} must be a finite number, got {v!r}")
        if m.get("min") is not None and v < m["min"]:
            raise ConfigError(f"{f.name} must be at least {_num(m['min'])}, got {v!r}")
        if m.get("max") is not None and v > m["max"]:
            raise ConfigError(f"{f.name} must be at most {_num(m['max'])}, got {v!r}")
        if m.get("above") is not None and v <= m["above"]:
            raise ConfigError(f"{f.name} must be greater than {_num(m['above'])}, got {v!r}")


def from_dict(cls, d: dict, source: str = "config", error: type[Exception] = ConfigError):
    """``cls(**d)``, refusing keys ``cls`` does not know; missing keys take their defaults."""
    if not isinstance(d, dict):
        raise error(f"{source} is not a JSON object")
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        names = ", ".join(short(k) for k in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise error(
            f"{source} has fields [{names}] that {cls.__name__} does not know; "
            f"it was written by a different model or a newer genlab"
        )
    try:
        obj = cls(**d)
        check(obj)  # types and bounds, also of a dataclass that does not check itself
        return obj
    except ConfigError as e:
        raise error(f"{source}: {e}") from None
    except TypeError as e:  # a value of the wrong kind that the dataclass itself chokes on
        raise error(f"{source}: {e}") from None


def bounded(kind: type, lo: float, hi: float):
    """An argparse ``type`` for a flag that is not a dataclass field: a finite ``kind`` (int or float) from
    ``lo`` to ``hi``. argparse prints the refusal as "argument --n: must be 1 to 1024, got 0" and exits 2."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a {'whole ' if kind is int else ''}number, got {text!r}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {_num(lo)} to {_num(hi)}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser, cls, skip: tuple[str, ...] = (), dest_prefix: str = "") -> None:
    """One flag per field of ``cls`` (``--max-steps``), default None so that callers can tell what was given."""
    types_ = field_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("flag", True):
            continue
        tp, default = types_[f.name], f.default
        shown = "" if default is dataclasses.MISSING or default is None else f" (default {default})"
        helptext = (f.metadata.get("help", "") + shown).strip() or None
        kwargs = {"dest": dest_prefix + f.name, "default": None, "help": helptext}
        if tp is bool:
            parser.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            choices = f.metadata.get("choices")
            metavar = "{" + ",".join(map(str, choices)) + "}" if choices else f.name.upper()
            flags = (flag_name(f.name), *f.metadata.get("aliases", ()))
            parser.add_argument(*flags, type=tp, metavar=metavar, choices=choices, **kwargs)


def given(namespace: argparse.Namespace, cls, dest_prefix: str = "") -> dict:
    """The fields of ``cls`` that were set on the command line."""
    out = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("flag", True):
            continue
        v = getattr(namespace, dest_prefix + f.name, None)
        if v is not None:
            out[f.name] = v
    return out


def as_flags(values: dict) -> list[str]:
    """{"max_steps": 10, "amp": False, "lr": None} -> ["--max-steps", "10", "--no-amp"]."""
    out = []
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out.append(flag_name(k) if v else "--no-" + k.replace("_", "-"))
        else:
            out += [flag_name(k), str(v)]
    return out
