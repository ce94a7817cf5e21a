"""Everything an experiment file imports, from one line::

    from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

The frozen groups (``groups``, ``recipe``; ``DataConfig`` is the datasets'), loading a file and
``--set`` overrides (``load``), the checks before Ray starts (``validate``), the ``--help`` text
(``help``), and ``resolve_trial`` (``trial``), the one place that decides what a trial trains with.
"""

from ltray.config.groups import (LOGGERS, ORACLE_TAU_MAX, Experiment, ModelConfig, PosthocConfig, Resources,
                                 SearchConfig)
from ltray.config.help import describe_fields
from ltray.config.load import apply_overrides, load_experiment, to_dict
from ltray.config.recipe import Recipe
from ltray.config.trial import (TrialPlan, meta_of, method_recipe, resolve_trial, shared_knobs, stage_methods,
                                stage_recipes, trial_data)
from ltray.config.validate import check_data, validate
from ltray.datasets import DataConfig

__all__ = ["DataConfig", "Experiment", "LOGGERS", "ModelConfig", "ORACLE_TAU_MAX", "PosthocConfig", "Recipe", "Resources",
           "SearchConfig", "TrialPlan", "apply_overrides", "check_data", "describe_fields", "load_experiment",
           "meta_of", "method_recipe", "resolve_trial", "shared_knobs", "stage_methods", "stage_recipes", "to_dict", "trial_data", "validate"]
