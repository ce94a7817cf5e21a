"""The study's searcher: Optuna (TPE for one objective, NSGA-II for two) inside Ray Tune's
``OptunaSearch``, over the define-by-run space, each method first at its published defaults;
``Repeater`` gives Optuna one mean per configuration when the study has repeats."""

from __future__ import annotations

import optuna
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch

from ltray.config import Experiment
from ltray.methods.space import Space, default_points
from ltray.results import search_storage


def build_searcher(exp: Experiment, study_dir: str, resume: bool):
    """The searcher of a new study (``resume``: its storage is reopened, not started afresh)."""
    s = exp.search
    two = len(s.objectives) == 2
    kind = s.sampler if s.sampler != "auto" else ("nsga2" if two else "tpe")
    sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=s.seed),
               "random": lambda: optuna.samplers.RandomSampler(seed=s.seed),
               "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=s.seed)}[kind]()
    storage = search_storage.open_storage(s.storage, study_dir, resume)
    searcher = OptunaSearch(
        space=Space(exp.methods, exp.search.ranges), metric=list(s.objectives) if two else s.objectives[0],
        mode=["max", "max"] if two else "max", sampler=sampler, storage=storage, study_name=exp.name,
        points_to_evaluate=default_points(exp.methods) if s.search_defaults_first else None)
    return Repeater(searcher, repeat=exp.repeats) if exp.repeats > 1 else searcher
