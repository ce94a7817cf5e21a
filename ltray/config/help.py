"""The ``--help`` text of every experiment field: its dotted name, type, default and the one-line
docstring under it (CleanRL style), read from the source."""

from __future__ import annotations

import ast
import dataclasses
import typing
from dataclasses import fields

from ltray.config.groups import Experiment
from ltray.datasets import dataset_names
from ltray.methods import method_names
from ltray.models import MODELS

# fields whose values come from a registry: --help lists what is registered now, never a stale copy
CHOICES = {"data.name": dataset_names, "model.name": lambda: list(MODELS), "methods": method_names}


def _field_docs(cls) -> dict[str, str]:
    """The one-line docstring under each dataclass field (CleanRL style), read from the source."""
    import inspect

    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) \
                and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
            docs[a.target.id] = b.value.value.strip()
    return docs


def describe_fields(cls=Experiment, prefix: str = "", default=None) -> list[str]:
    """``dotted.name (type, default): doc`` for every settable field, for --help."""
    default = default if default is not None else cls()
    docs, hints, lines = _field_docs(cls), typing.get_type_hints(cls), []
    for f in fields(cls):
        tp, value = hints[f.name], getattr(default, f.name)
        if dataclasses.is_dataclass(tp):
            lines += describe_fields(tp, f"{prefix}{f.name}.", value)
        else:
            tname = getattr(tp, "__name__", str(tp)).replace("typing.", "")
            if typing.get_origin(tp) is tuple:
                tname = f"tuple[{typing.get_args(tp)[0].__name__}]"
            if typing.get_origin(tp) is dict:
                tname = "dict"
            doc = docs.get(f.name, "")
            if f"{prefix}{f.name}" in CHOICES:
                doc += f" Choices: {', '.join(CHOICES[prefix + f.name]())}."
            lines.append(f"  {prefix}{f.name} ({tname}, default {value!r}): {doc}")
    return lines
