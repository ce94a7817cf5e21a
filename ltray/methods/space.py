"""The search space of a study, define-by-run on an Optuna-like trial: pick the method, then
only that method's knobs (named ``method.knob``). Plus the stand-in trials that run each
method at its published defaults and read each knob's declared range. No Ray, no Optuna import:
any object with ``suggest_float`` / ``suggest_int`` / ``suggest_categorical`` will do.
"""

from __future__ import annotations

from ltray.errors import LtrayError
from ltray.methods import get_method


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
    """Define-by-run: pick the method, then sample only that method's knobs. A class, not a
    closure, because Tune pickles the searcher (and so this) into its experiment checkpoint."""

    def __init__(self, methods: tuple[str, ...], ranges: dict | None = None):
        self.methods, self.ranges = list(methods), dict(ranges or {})

    def __call__(self, trial) -> None:
        method = trial.suggest_categorical("method", self.methods)
        get_method(method).space(_Prefixed(trial, method, self.ranges))


def default_points(methods: tuple[str, ...]) -> list[dict]:
    out = []
    for name in methods:
        d = _Defaults(get_method(name))
        get_method(name).space(d)
        out.append({"method": name, **d.params})
    return out


def split_config(config: dict) -> tuple[str, dict]:
    """A Tune config (flat dict) -> (method, its hyperparameters without the prefix)."""
    method = config["method"]
    pre = method + "."
    return method, {k[len(pre):]: v for k, v in config.items() if k.startswith(pre)}


class _RangeProbe:
    """A stand-in trial that records each knob's declared range (and log scale)."""

    def __init__(self):
        self.knobs: dict[str, tuple[float, float, bool]] = {}

    def suggest_float(self, name, low, high, log=False, **kw):
        self.knobs[name] = (low, high, log)
        return low

    suggest_int = suggest_float

    def suggest_categorical(self, name, choices):
        return choices[0]


def declared_ranges(method: str) -> dict[str, tuple[float, float, bool]]:
    """knob -> (low, high, log) of a method's search space."""
    probe = _RangeProbe()
    get_method(method).space(probe)
    return probe.knobs
