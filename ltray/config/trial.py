"""What one trial trains with, decided in one place: ``resolve_trial``. The study's recipe, then
the method's ``recipe_overrides``, then the method's own changes (cRT's short class-balanced
stage) give the trial's recipe; its repeat gives its seed and data. Everything that depends on
how a trial trained (``fit``, its shared stage's key, its post-hoc rules) reads this, and
nothing applies a method's recipe hook again."""

from __future__ import annotations

import typing
from dataclasses import dataclass, replace

from ltray.config.groups import Experiment
from ltray.config.recipe import Recipe
from ltray.datasets import DataConfig, resolve
from ltray.methods import get_method, logits_are_balanced, method_names
from ltray.methods.space import SHARED, SharedKnob, split_knobs
from ltray.results.schema import TrialMeta


@dataclass(frozen=True)
class TrialPlan:
    """What one trial of a study trains with."""

    method: str
    """The method's registry name."""
    hp: dict
    """Its full hyperparameters: the defaults, updated with the trial's knobs."""
    repeat: int
    """Which seed of the configuration (0 .. repeats - 1)."""
    seed: int
    """Weights and batch order: the study's seed + repeat."""
    data: DataConfig
    """This repeat's data: its own subset when the study's repeat_subsets is on."""
    recipe: Recipe
    """The recipe fit trains with: the study's, the method's recipe_overrides, the method's own changes."""
    balanced: bool
    """Whether the logits carry no training prior (a balanced loss or sampler in that recipe)."""


def resolve_trial(exp: Experiment, method: str, hp: dict | None = None, repeat: int = 0) -> TrialPlan:
    """The one decision of what a trial of ``method`` (knobs ``hp``, ``repeat``-th seed) trains
    with. Shared recipe knobs in ``hp`` (``train.weight_decay``) replace the study's recipe
    fields before the method's own changes (LDAM-DRW's schedule keeps the searched decay)."""
    m = get_method(method)
    knobs, fields = split_knobs(hp or {})
    full = m.hp(knobs)
    base = method_recipe(exp, method)
    if fields:
        hints = typing.get_type_hints(Recipe)
        base = replace(base, **{k: int(round(v)) if hints[k] is int else float(v) for k, v in fields.items()})
    recipe = m.recipe(base, full)
    return TrialPlan(method=method, hp=full, repeat=repeat, seed=exp.seed + repeat, data=trial_data(exp, repeat),
                     recipe=recipe, balanced=logits_are_balanced(m, recipe))


def meta_of(exp: Experiment, trial_id: str, method: str, hp: dict, repeat: int, config_index: int = -1) -> TrialMeta:
    """Who a trial of this study is (its rows' key columns): ``hp`` as the searcher gave them."""
    data = trial_data(exp, repeat)
    return TrialMeta(study=exp.name, trial_id=trial_id, method=method, params=dict(hp), seed=exp.seed + repeat,
                     repeat=repeat, dataset=data.name, rho=data.rho, model=exp.model.name,
                     num_workers=exp.resources.num_workers, objective=exp.search.objectives[0],
                     config_index=config_index)


def shared_knobs(exp: Experiment) -> tuple[SharedKnob, ...]:
    """The study's shared recipe knobs (``search.shared``), their ranges from ``search.ranges``
    and their defaults from the study's recipe (validation checked both exist)."""
    hints = typing.get_type_hints(Recipe)
    out = []
    for name in exp.search.shared:
        low, high = exp.search.ranges[name]
        field_name = name[len(SHARED):]
        out.append(SharedKnob(name=name, low=float(low), high=float(high), integer=hints[field_name] is int,
                              default=getattr(exp.train, field_name)))
    return tuple(out)


def stage_recipes(exp: Experiment) -> dict[str, Recipe]:
    """The recipe of every method a shared stage may train (at the method's defaults)."""
    return {m: resolve_trial(exp, m).recipe for m in method_names()}


def stage_methods(methods: tuple[str, ...]) -> tuple[str, ...]:
    """Methods trained once per study as a shared stage for these (DiVE's teacher, cRT's backbone)."""
    out = []
    for name in methods:
        m = get_method(name)
        out += [s for s in (m.teacher, m.backbone_from) if s and s not in out]
    return tuple(out)


def trial_data(exp: Experiment, repeat: int) -> DataConfig:
    """The data of a study's ``repeat``-th seed: its own subset when ``repeat_subsets``."""
    data = resolve(exp.data)
    return replace(data, subset_seed=data.subset_seed + repeat) if exp.repeat_subsets and repeat else data


def method_recipe(exp: Experiment, method: str) -> Recipe:
    """The study's recipe with this method's ``recipe_overrides`` applied (before the method's own changes)."""
    changes = {}
    for key, value in exp.recipe_overrides.items():
        m, _, fname = key.partition(".")
        if m == method:
            changes[fname] = int(value) if typing.get_type_hints(Recipe)[fname] is int else float(value)
    return replace(exp.train, **changes) if changes else exp.train
