"""Running a study on Ray: ``python -m ltray.sweep``. The only Ray and Optuna importers.

- ``cli``: parse, validate before Ray starts, summary (no Ray);
- ``study``: ``launch`` and ``run_study`` (Tune + Optuna over the trials, resume);
- ``driver``: ``run_trial``, the Tune function of one trial (in-process or Ray Train workers);
- ``trial``: ``TrialSpec`` and ``train_trial``, one trial's body without Ray;
- ``outcomes``: how trials end, the one writer of rows without a result;
- ``searcher``, ``progress`` (the Tune callback), ``stages`` (shared stages), ``claims``,
  ``tune_state`` (a whole copy of Tune's state), ``loggers`` (MLflow, W&B), ``submit`` (Ray Jobs).

Importing this package imports no Ray: the command line validates before Ray starts.
"""

# Tune pickles a study's callback with the study; one started before 0.2 pickled the callback of
# the old module ltray.sweep by value, with references to these helpers. --resume unpickles it
# (then runs this ltray's callback instead), so the names must resolve here.
_PICKLED = ("_knobs", "_last_line", "_publish", "_what")


def __getattr__(name: str):
    if name in _PICKLED:
        from ltray.sweep import progress  # imports Ray: only when an old study is unpickled

        return getattr(progress, name)
    raise AttributeError(f"module 'ltray.sweep' has no attribute {name!r}")
