"""ltray: compare and tune long-tailed image classification methods at scale.

The flow, one package a step:

- command: ``python -m ltray.sweep experiments/quickstart.py`` (``ltray.sweep.cli``) loads the
  experiment file and validates it before Ray starts (``ltray.config``);
- study: ``ltray.sweep.study.run_study`` runs Ray Tune with Optuna over the methods and their
  knobs (``ltray.methods``), or resumes it;
- trial: ``ltray.sweep.driver.run_trial``, one Tune trial, runs ``ltray.sweep.trial.train_trial``
  in its process or in Ray Train workers; ``ltray.config.resolve_trial`` decides what it trains with;
- fit: ``ltray.train.fit`` trains one model on one dataset (``ltray.datasets``, ``ltray.models``)
  and keeps the epoch that is best on validation;
- tables: every row of the trial (``ltray.results``), one Parquet file per trial and table;
- views: ``python -m ltray.report`` / ``ltray.query`` (``ltray.report``) and ``python -m dashboard``.

``ltray.core`` holds the pure math every step uses.
"""

from ltray.errors import LtrayError

__version__ = "0.3.0"
__all__ = ["LtrayError", "__version__"]
