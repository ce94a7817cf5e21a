"""Running a study on Ray: ``python -m ltray.sweep``. The only Ray and Optuna importers.

- ``cli``: parse, validate before Ray starts, summary (no Ray);
- ``study``: ``launch`` and ``run_study`` (Tune + Optuna over the trials, resume);
- ``driver``: ``run_trial``, the Tune function of one trial (in-process or Ray Train workers);
- ``trial``: ``TrialSpec`` and ``train_trial``, one trial's body without Ray;
- ``outcomes``: how trials end, the one writer of rows without a result;
- ``journal`` (the configurations the search asked for), ``plan`` and ``reconcile`` (what a
  run has left, Optuna made to agree with the rows), ``searcher`` (Tune's searcher over Optuna),
  ``checkpoints`` (in-process trials'), ``lease`` (one run per study), ``faults`` (pause points
  for fault tests), ``progress`` (the Tune callback), ``stages`` (shared stages), ``claims``,
  ``loggers`` (MLflow, W&B), ``submit`` (Ray Jobs).

Importing this package imports no Ray: the command line validates before Ray starts.
"""
