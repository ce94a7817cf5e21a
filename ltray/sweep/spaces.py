"""The Optuna studies behind one ltray study and what each searches: one study over all methods
(the method is a categorical, ``search.num_samples`` configurations in all), or, with
``search.per_method = N``, one study per method named ``<study>.<method>`` that sees only its
own trials (its own knobs and the shared recipe knobs), N distinct configurations each. No Ray,
no Optuna import (the searcher and the reconciliation open the studies).
"""

from __future__ import annotations

from ltray.config import Experiment, shared_knobs
from ltray.methods.space import Space, capacity, default_points


def per_method(exp: Experiment) -> bool:
    return exp.search.per_method > 0


def study_of(exp: Experiment, method: str) -> str:
    """The Optuna study that searches ``method``."""
    return f"{exp.name}.{method}" if per_method(exp) else exp.name


def study_names(exp: Experiment) -> list[str]:
    return [study_of(exp, m) for m in exp.methods] if per_method(exp) else [exp.name]


def methods_of(exp: Experiment, name: str) -> tuple[str, ...]:
    """The methods an Optuna study of this ltray study searches."""
    return tuple(m for m in exp.methods if study_of(exp, m) == name)


def space_of(exp: Experiment, name: str) -> Space:
    return Space(methods_of(exp, name), exp.search.ranges, shared_knobs(exp), pick=not per_method(exp))


def defaults_of(exp: Experiment, name: str) -> list[dict]:
    """The Optuna params of each published-defaults configuration this study runs first."""
    return default_points(methods_of(exp, name), shared_knobs(exp), pick=not per_method(exp))


def quota(exp: Experiment) -> dict[str, int]:
    """per_method: method -> its distinct configurations, N or fewer when its space holds fewer
    (a method without knobs: 1). Empty for one search over all methods."""
    if not per_method(exp):
        return {}
    shared = shared_knobs(exp)
    return {m: int(min(exp.search.per_method, capacity(m, exp.search.ranges, shared))) for m in exp.methods}


def planned(exp: Experiment) -> int:
    """Configurations in the study (each trains once per repeat)."""
    return sum(quota(exp).values()) if per_method(exp) else exp.search.num_samples
