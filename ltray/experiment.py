"""Compatibility shim: experiments moved to ``ltray.config`` (0.2). Experiment files that import
``from ltray.experiment import Experiment, ...`` keep working; new ones import ``ltray.config``."""

from ltray.config import *  # noqa: F401,F403
from ltray.config import __all__  # noqa: F401
from ltray.config.trial import method_recipe, trial_data  # noqa: F401


def effective_recipe(exp, method: str, hp: dict | None = None):
    """The recipe a trial of ``method`` trains with (``ltray.config.resolve_trial(...).recipe``)."""
    from ltray.config import resolve_trial

    return resolve_trial(exp, method, hp).recipe
