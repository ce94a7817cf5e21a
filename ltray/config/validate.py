"""Everything about an experiment that can be checked before Ray starts, raised as one
``LtrayError``: types and finite numbers, each group's own ``validate``, and the checks that
span groups (ranges against methods, recipe overrides, data against model)."""

from __future__ import annotations

import math
import re
import typing
from dataclasses import fields, is_dataclass, replace

from ltray.config.groups import ORACLE_TAU_MAX, Experiment
from ltray.config.recipe import Recipe
from ltray.config.trial import method_recipe, shared_knobs, stage_methods
from ltray.datasets import DataConfig, get_dataset, resolve
from ltray.errors import LtrayError
from ltray.methods import get_method, method_names
from ltray.methods.space import SHARED, declared_ranges
from ltray.models import EXPERT_PARTS, MODELS

MAX_INT = 2**31 - 1  # no integer field means more; a larger one overflows a seed or a count somewhere
MAX_SEED = 2**31 - 1  # seeds numpy, torch and Optuna alike
MAX_RHO = 1e6  # no dataset has a million images in its head class
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _check_types(obj, where: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        v, tp, name = getattr(obj, f.name), hints[f.name], f"{where}{f.name}"
        if is_dataclass(tp):
            if not isinstance(v, tp):
                raise LtrayError(f"{name} must be a {tp.__name__}, got {type(v).__name__}")
            _check_types(v, name + ".")
        elif typing.get_origin(tp) is dict:
            if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
                raise LtrayError(f"{name} must be a dict with string keys, got {v!r}")
            value_tp = typing.get_args(tp)[1]
            for k, val in v.items():
                if value_tp is float:
                    if not _is(val, float) or not math.isfinite(val):
                        raise LtrayError(f"{name}[{k!r}] must be a number, got {val!r}")
                elif not isinstance(val, (tuple, list)) or len(val) != 2 or not all(_is(x, float) for x in val) \
                        or not all(math.isfinite(x) for x in val):
                    raise LtrayError(f"{name}[{k!r}] must be a (low, high) pair of numbers, got {val!r}")
        elif typing.get_origin(tp) is tuple:
            inner = typing.get_args(tp)[0]
            if not isinstance(v, (tuple, list)) or not all(_is(x, inner) for x in v):
                raise LtrayError(f"{name} must be a tuple of {inner.__name__}, got {v!r}")
            if inner is float and not all(math.isfinite(x) for x in v):
                raise LtrayError(f"{name} must hold finite numbers, got {v!r}")
        elif not _is(v, tp):
            raise LtrayError(f"{name} must be a {tp.__name__}, got {v!r}")
        elif tp is float and not math.isfinite(v):
            raise LtrayError(f"{name} must be a finite number, got {v!r}")
        elif tp is int and not -MAX_INT <= v <= MAX_INT:
            raise LtrayError(f"{name} must lie within +-{MAX_INT:,}, got {v!r}")


def _is(v, tp) -> bool:
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, tp)


def validate(exp: Experiment, cluster: dict | None = None, local_data: bool = True) -> None:
    """Check everything that can be checked before Ray starts; raise one LtrayError.

    Each config group checks its own fields (``SearchConfig.validate``, ``Resources.validate``,
    ``check_data``, ``Recipe.validate``); this adds the checks that span groups. ``cluster``
    ({"CPU": n, "GPU": m}) are the resources available; a trial that cannot fit is refused.
    Missing data is found here too, unless ``local_data`` is False (a job whose data lives on
    the cluster).
    """
    _check_types(exp)
    check_name(exp.name)
    if not 1 <= exp.repeats <= 1000:
        raise LtrayError(f"repeats must be in [1, 1000], got {exp.repeats}")
    if not 0 <= exp.seed <= MAX_SEED - exp.repeats:
        raise LtrayError(f"seed must be in [0, {MAX_SEED - exp.repeats:,}] (seed + repeats seeds the repeats), got {exp.seed}")
    if not exp.methods:
        raise LtrayError("methods is empty; name at least one of " + ", ".join(method_names()))
    for m in exp.methods:
        get_method(m)
    if len(set(exp.methods)) != len(exp.methods):
        raise LtrayError(f"methods lists a method twice: {exp.methods}")
    if exp.model.name not in MODELS:
        raise LtrayError(f"unknown model {exp.model.name!r}; choose one of {', '.join(MODELS)}")
    multi = [m for m in exp.methods if get_method(m).experts(get_method(m).hp())]
    if multi and exp.model.name not in EXPERT_PARTS:
        raise LtrayError(f"{', '.join(multi)} train{'s' if len(multi) == 1 else ''} several experts on a shared trunk, "
                         f"which model {exp.model.name!r} has no form of; use model.name={' or '.join(EXPERT_PARTS)}")
    dataset = check_data(exp.data, local_data)
    exp.train.validate()
    exp.search.validate(exp.train.epochs, len(exp.methods))
    _check_shared(exp)
    _check_ranges(exp)
    _check_recipe_overrides(exp)
    exp.resources.validate(cluster)
    if exp.pretrain not in ("", "rotation"):
        raise LtrayError(f"pretrain must be '' or 'rotation', got {exp.pretrain!r}")
    if exp.pretrain and not dataset.square_images:
        raise LtrayError(f"pretrain=rotation needs square in-memory images, not {exp.data.name}")
    if exp.repeats > 1 and len(exp.search.objectives) == 2:  # Tune's Repeater averages one metric only
        raise LtrayError("repeats > 1 needs one objective (Tune's Repeater averages a single metric)")
    if exp.train.track_test and exp.posthoc.tau_max != ORACLE_TAU_MAX:
        raise LtrayError(f"train.track_test's per-epoch test oracle searches tau in [0, {ORACLE_TAU_MAX:g}]; set "
                         f"posthoc.tau_max={ORACLE_TAU_MAX:g} so that the protocol gap compares like with like")
    if not exp.posthoc.tau_max > 0:
        raise LtrayError(f"posthoc.tau_max must be > 0, got {exp.posthoc.tau_max}")
    if dataset.points != (exp.model.name == "linear"):
        raise LtrayError(f"{exp.data.name} is 2-d points: use model.name=linear" if dataset.points else
                         f"model linear is for points (gaussian-lt), not {exp.data.name}")


def check_name(name: str) -> None:
    """A study name is a folder name every filesystem and URI takes as it is: 1 to 100 letters,
    digits, ".", "_" or "-", starting with a letter or digit."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise LtrayError(f"the study name must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or "
                         f"digit (it names the study's folder), got {name!r}")


def check_data(cfg: DataConfig, local_data: bool = True):
    """The data config on its own: a registered dataset, rho, counts, the validation size it has
    room for, and (``local_data``) that its files are there. Returns the dataset's entry."""
    dataset = get_dataset(cfg.name)
    if not cfg.rho >= 1:
        raise LtrayError(f"data.rho must be >= 1 (n_max / n_min), got {cfg.rho}")
    if not 0 <= cfg.subset_seed <= MAX_SEED:
        raise LtrayError(f"data.subset_seed must be in [0, {MAX_SEED:,}], got {cfg.subset_seed}")
    cfg = resolve(cfg)
    most = dataset.max_rho(cfg) if dataset.max_rho else MAX_RHO
    if not cfg.counts and cfg.rho > most:
        raise LtrayError(f"data.rho={cfg.rho:g} leaves the rarest class of {cfg.name} without a training image: "
                         f"rho is at most {most:g} here (n_max / n_min, n_min >= 1)")
    if cfg.counts:
        if not dataset.classes or dataset.points:
            raise LtrayError(f"data.counts applies to image datasets with a fixed class count, not {cfg.name}")
        if len(cfg.counts) != dataset.classes or min(cfg.counts) < 1:
            raise LtrayError(f"data.counts needs {dataset.classes} positive counts for {cfg.name}, got {cfg.counts}")
    if local_data:
        dataset.check(cfg)
    return dataset


def _check_recipe_overrides(exp: Experiment) -> None:
    trained = stage_methods(exp.methods)
    numeric = {f.name for f in fields(Recipe) if typing.get_type_hints(Recipe)[f.name] in (int, float)}
    for key in exp.recipe_overrides:
        method, _, fname = key.partition(".")
        if method not in exp.methods and method not in trained:
            raise LtrayError(f"recipe_overrides[{key!r}]: {method!r} is not among methods {exp.methods} "
                             f"nor a shared stage they train ({', '.join(trained) or 'none'})")
        if fname not in numeric:
            raise LtrayError(f"recipe_overrides[{key!r}]: the recipe has no numeric field {fname!r}; "
                             f"choose from {', '.join(sorted(numeric))}")
    for m in (*exp.methods, *trained):
        method_recipe(exp, m).validate()


def _check_shared(exp: Experiment) -> None:
    """Each shared knob: a numeric recipe field, named once, with a range that holds the study's
    value (its published-defaults configurations train at it), not also set per method."""
    hints = typing.get_type_hints(Recipe)
    numeric = sorted(f.name for f in fields(Recipe) if hints[f.name] in (int, float))
    if len(set(exp.search.shared)) != len(exp.search.shared):
        raise LtrayError(f"search.shared names a knob twice: {exp.search.shared}")
    for name in exp.search.shared:
        field_name = name[len(SHARED):]
        if not name.startswith(SHARED) or field_name not in numeric:
            raise LtrayError(f"search.shared[{name!r}] must be 'train.<field>' of a numeric recipe field: "
                             + ", ".join(SHARED + f for f in numeric))
        if name not in exp.search.ranges:
            raise LtrayError(f"search.shared names {name} without a range: set search.ranges[{name!r}] = (low, high) "
                             f"(--set search.ranges.{name}=LOW,HIGH)")
        set_per_method = [k for k in exp.recipe_overrides if k.partition(".")[2] == field_name]
        if set_per_method:
            raise LtrayError(f"search.shared searches {name}, which recipe_overrides also sets ({', '.join(set_per_method)}); "
                             "drop one of the two")
    for knob in shared_knobs(exp):
        lo, hi = knob.low, knob.high
        if knob.integer and not (lo == int(lo) and hi == int(hi)):
            raise LtrayError(f"search.ranges[{knob.name!r}] = ({lo:g}, {hi:g}): {knob.name} is an integer; give whole numbers")
        if exp.search.search_defaults_first and not lo <= knob.default <= hi:
            raise LtrayError(f"search.ranges[{knob.name!r}] = ({lo:g}, {hi:g}) excludes the study's {knob.name}="
                             f"{knob.default:g}, which the published-defaults configurations train with; widen the "
                             "range or set search.search_defaults_first=false")
        for end in (lo, hi):  # every value of the range is a recipe the trials can train with
            try:
                replace(exp.train, **{knob.name[len(SHARED):]: type(knob.default)(end)}).validate()
            except LtrayError as e:
                raise LtrayError(f"search.ranges[{knob.name!r}] = ({lo:g}, {hi:g}) reaches a value the recipe "
                                 f"refuses: {e}") from None


def _check_ranges(exp: Experiment) -> None:
    for key, (lo, hi) in exp.search.ranges.items():
        if key.startswith(SHARED):
            if key not in exp.search.shared:
                raise LtrayError(f"search.ranges[{key!r}] is the range of a shared knob: add {key!r} to search.shared")
            if not lo < hi:
                raise LtrayError(f"search.ranges[{key!r}] = ({lo}, {hi}) is empty or inverted: need low < high")
            continue
        method, _, knob = key.partition(".")
        if method not in exp.methods:
            raise LtrayError(f"search.ranges[{key!r}]: {method!r} is not among methods {exp.methods}")
        declared = declared_ranges(method)
        if knob not in declared:
            raise LtrayError(f"search.ranges[{key!r}]: {method} searches no knob {knob!r}; "
                             f"it searches {', '.join(declared) or 'nothing'}")
        if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
            raise LtrayError(f"search.ranges[{key!r}] = ({lo}, {hi}) is empty or inverted: need low < high")
        if declared[knob][2] and lo <= 0:
            raise LtrayError(f"search.ranges[{key!r}]: {knob} is searched on a log scale, so low must be > 0")
        default = get_method(method).defaults[knob]
        if exp.search.search_defaults_first and not lo <= default <= hi:
            raise LtrayError(f"search.ranges[{key!r}] = ({lo}, {hi}) excludes the default {knob}={default}, which "
                             "runs first; widen the range or set search.search_defaults_first=false")
