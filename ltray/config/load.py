"""Loading an experiment file and applying ``--set dotted.path=value`` overrides (mmpretrain's
--cfg-option). The file is Python and runs here, before anything is validated: it must be trusted."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os
import typing
from dataclasses import fields, replace
from pathlib import Path

from ltray.config.groups import Experiment
from ltray.errors import LtrayError


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Execute an experiment file and return its ``EXPERIMENT``; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise LtrayError(f"experiment file {p} does not exist")
    if p.suffix != ".py":
        raise LtrayError(f"experiment file {p} must be a Python file ending in .py")
    spec = importlib.util.spec_from_file_location(f"ltray_experiment_{p.stem}", p)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except LtrayError:
        raise
    except SystemExit as e:  # the file is a script, not a definition: it must not end the command
        raise LtrayError(f"{p} called sys.exit({e.code!r}) while it was loaded; an experiment file only defines "
                         "EXPERIMENT") from None
    except Exception as e:
        raise LtrayError(f"{p} failed to run: {type(e).__name__}: {e}") from e
    exp = getattr(module, "EXPERIMENT", None)
    if not isinstance(exp, Experiment):
        raise LtrayError(f"{p} must define EXPERIMENT = Experiment(...), found {type(exp).__name__}")
    return exp


def _coerce(text: str, tp, where: str):
    """Parse an override value for a field of type ``tp`` (str, int, float, bool, tuples)."""
    origin = typing.get_origin(tp)
    if tp is str:
        return text
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise LtrayError(f"--set {where}: expected true/false, got {text!r}")
    if tp in (int, float):
        try:
            v = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise LtrayError(f"--set {where}: expected a {tp.__name__}, got {text!r}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (tp is int and not float(v).is_integer()):
            raise LtrayError(f"--set {where}: expected a {tp.__name__}, got {text!r}")
        return tp(v)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        parts = [s for s in (x.strip() for x in text.strip().strip("()[]").split(",")) if s]
        return tuple(_coerce(s.strip("'\""), inner, where) for s in parts)
    raise LtrayError(f"--set {where}: cannot set a field of type {tp}")


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def apply_overrides(exp: Experiment, items: list[str]) -> Experiment:
    """Return a copy with ``dotted.path=value`` overrides applied (mmpretrain's --cfg-option)."""
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LtrayError(f"--set wants key=value (e.g. train.epochs=3), got {item!r}")
        exp = _set(exp, key.strip().split("."), value, key.strip())
    return exp


def _set(obj, path: list[str], value: str, where: str):
    names = {f.name for f in fields(obj)}
    head = path[0]
    if head not in names:
        raise LtrayError(f"--set {where}: {type(obj).__name__} has no field {head!r}; it has {', '.join(sorted(names))}")
    tp = _hints(type(obj))[head]
    if typing.get_origin(tp) is dict:
        key_tp, val_tp = typing.get_args(tp)
        if len(path) < 2:
            raise LtrayError(f"--set {where}: name the entry, e.g. --set {where}.logit_adjusted.tau=0.5,2")
        return replace(obj, **{head: {**getattr(obj, head), ".".join(path[1:]): _coerce(value, val_tp, where)}})
    if len(path) == 1:
        if dataclasses.is_dataclass(tp):
            raise LtrayError(f"--set {where}: {head} is a group; set one of its fields, e.g. {where}.{fields(tp)[0].name}=...")
        return replace(obj, **{head: _coerce(value, tp, where)})
    child = getattr(obj, head)
    if not dataclasses.is_dataclass(child):
        raise LtrayError(f"--set {where}: {head} has no fields")
    return replace(obj, **{head: _set(child, path[1:], value, where)})


def to_dict(exp: Experiment) -> dict:
    """The experiment as plain data (what ``experiment.json`` records)."""
    return dataclasses.asdict(exp)
