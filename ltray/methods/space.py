"""The search space of a study, define-by-run on an Optuna-like trial: pick the method (or
search one method's own study), then only that method's knobs (named ``method.knob``), then
the shared recipe knobs every method gets (named ``train.field``). Plus the stand-in trials
that run each method at its published defaults and read each knob's declared range. No Ray, no
Optuna import: any object with ``suggest_float`` / ``suggest_int`` / ``suggest_categorical`` will do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ltray.errors import LtrayError
from ltray.methods import get_method

SHARED = "train."
"""The prefix of a shared recipe knob's name (``train.weight_decay``) in a configuration."""


@dataclass(frozen=True)
class SharedKnob:
    """A recipe field every method of the study searches (``search.shared``)."""

    name: str
    """``train.<field>``: its name in the configuration and in the trials' ``params``."""
    low: float
    high: float
    integer: bool
    default: float
    """The study's recipe value: what a method's published-defaults configuration trains with."""

    @property
    def log(self) -> bool:
        """Searched on a log scale when the range is positive (learning rate, weight decay are scales)."""
        return self.low > 0

    def suggest(self, trial):
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


class _Prefixed:
    """Hands a method's define-by-run space an Optuna trial whose names carry the method, so
    knobs of different methods never share an Optuna parameter ("lade.lam" vs "equalization.lam")."""

    def __init__(self, trial, method: str, ranges: dict | None = None):
        self._trial, self._prefix, self._ranges = trial, method + ".", ranges or {}

    def _bounds(self, name, low, high):
        return self._ranges.get(self._prefix + name, (low, high))

    def suggest_float(self, name, low, high, **kwargs):
        return self._trial.suggest_float(self._prefix + name, *self._bounds(name, low, high), **kwargs)

    def suggest_int(self, name, low, high, **kwargs):
        lo, hi = self._bounds(name, low, high)
        return self._trial.suggest_int(self._prefix + name, int(lo), int(hi), **kwargs)

    def suggest_categorical(self, name, *args, **kwargs):
        return self._trial.suggest_categorical(self._prefix + name, *args, **kwargs)


class _Defaults:
    """A stand-in trial that answers every suggestion with the method's default (and checks it
    lies in the declared range): the first trials run each method as published."""

    def __init__(self, method):
        self.m, self.params = method, {}

    def _get(self, name, ok):
        v = self.m.defaults[name]
        if not ok(v):
            raise LtrayError(f"method {self.m.name}: default {name}={v} lies outside its search range")
        self.params[f"{self.m.name}.{name}"] = v
        return v

    def suggest_float(self, name, low, high, **kw):
        return self._get(name, lambda v: low <= v <= high)

    def suggest_int(self, name, low, high, **kw):
        return self._get(name, lambda v: low <= v <= high)

    def suggest_categorical(self, name, choices):
        return self._get(name, lambda v: v in choices)


class Space:
    """Define-by-run: pick the method (``pick``; else the one method of a per-method study),
    then sample only that method's knobs, then the shared recipe knobs. A class, not a closure,
    because Tune pickles the searcher (and so this) into its experiment checkpoint."""

    def __init__(self, methods: tuple[str, ...], ranges: dict | None = None, shared: tuple[SharedKnob, ...] = (),
                 pick: bool = True):
        self.methods, self.ranges, self.shared, self.pick = list(methods), dict(ranges or {}), tuple(shared), pick

    def __call__(self, trial) -> None:
        method = trial.suggest_categorical("method", self.methods) if self.pick else self.methods[0]
        get_method(method).space(_Prefixed(trial, method, self.ranges))
        for knob in self.shared:
            knob.suggest(trial)


def default_points(methods: tuple[str, ...], shared: tuple[SharedKnob, ...] = (), pick: bool = True) -> list[dict]:
    """Each method's published-defaults configuration as Optuna params (the shared knobs at the
    study's recipe values); with ``pick``, naming the method too."""
    out = []
    for name in methods:
        d = _Defaults(get_method(name))
        get_method(name).space(d)
        out.append({**({"method": name} if pick else {}), **d.params, **{k.name: k.default for k in shared}})
    return out


def split_config(config: dict) -> tuple[str, dict]:
    """A Tune config (flat dict) -> (method, its knobs without the prefix and the shared recipe
    knobs as they are: ``{"tau": 1.0, "train.weight_decay": 5e-4}``)."""
    method = config["method"]
    pre = method + "."
    return method, {(k[len(pre):] if k.startswith(pre) else k): v for k, v in config.items()
                    if k.startswith(pre) or k.startswith(SHARED)}


def split_knobs(hp: dict) -> tuple[dict, dict]:
    """A configuration's knobs -> (the method's, the recipe's by field name)."""
    return ({k: v for k, v in hp.items() if not k.startswith(SHARED)},
            {k[len(SHARED):]: v for k, v in hp.items() if k.startswith(SHARED)})


def capacity(method: str, ranges: dict | None = None, shared: tuple[SharedKnob, ...] = ()) -> float:
    """How many distinct configurations the method's space holds (its ranges as ``ranges`` set
    them): inf with a float knob, the product of the choices otherwise (1 without knobs)."""
    probe = _RangeProbe()
    get_method(method).space(_Prefixed(probe, method, ranges))
    sizes = [math.inf if not integer else high - low + 1 for low, high, _, integer in probe.knobs.values()]
    sizes += [math.inf if not k.integer else k.high - k.low + 1 for k in shared]
    sizes += [len(c) for c in probe.choices.values()]
    return math.prod(sizes)


class _RangeProbe:
    """A stand-in trial that records each knob's declared range (log scale, integer) and choices."""

    def __init__(self):
        self.knobs: dict[str, tuple[float, float, bool, bool]] = {}
        self.choices: dict[str, list] = {}

    def suggest_float(self, name, low, high, log=False, **kw):
        self.knobs[name] = (low, high, log, False)
        return low

    def suggest_int(self, name, low, high, log=False, **kw):
        self.knobs[name] = (low, high, log, True)
        return low

    def suggest_categorical(self, name, choices):
        self.choices[name] = list(choices)
        return choices[0]


def declared_ranges(method: str) -> dict[str, tuple[float, float, bool]]:
    """knob -> (low, high, log) of a method's search space."""
    probe = _RangeProbe()
    get_method(method).space(probe)
    return {k: v[:3] for k, v in probe.knobs.items()}
