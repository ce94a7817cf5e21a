"""Experiment trackers a study also logs to (``search.loggers``): Ray Tune's own MLflow and
Weights & Biases logger callbacks, one tracker run per Tune trial, named after the study and
tagged with ltray's ``trial_id`` and method. They log what Tune is told, and a finished trial's
last report is its trials row's validation metrics (``ltray.sweep.outcomes.stored_result``), so a run's
last ``val_bal_acc`` is the trials table's.

Part of the sweep layer (``ltray.sweep.study`` calls :func:`tune_callbacks`). It imports Ray
inside functions, and mlflow / wandb only when a study names them.
"""

from __future__ import annotations

import os

from ltray.config import SearchConfig
from ltray.methods.space import split_config
from ltray.sweep.journal import trial_of


def run_tags(trial_id: str, config: dict) -> dict[str, str]:
    """What maps a tracker run to its trials row: ltray's trial id and the method."""
    method, _ = split_config(config)
    return {"trial_id": trial_id, "method": method}


def mlflow_tracking_uri(uri: str) -> str:
    """``search.mlflow_uri``, else $MLFLOW_TRACKING_URI, else MLflow's own default, a SQLite file
    ``mlflow.db`` in the working directory (MLflow 3.x refuses the old ``./mlruns`` file store
    unless MLFLOW_ALLOW_FILE_STORE=true), made absolute: Tune keeps the callback in its state, so
    a study resumed from another folder logs to the same file."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    return uri or f"sqlite:///{os.path.abspath('mlflow.db')}"


def _mlflow_callback(search: SearchConfig, study: str):
    from ray.air.integrations.mlflow import MLflowLoggerCallback  # imports mlflow: only when asked for

    class TaggedMLflow(MLflowLoggerCallback):
        """Ray's MLflow callback (trial config as params, every result as metrics at Tune's
        iteration) with each run also tagged by :func:`run_tags`."""

        def log_trial_start(self, trial):
            self.tags = {"study": study, **run_tags(trial_of(trial), trial.config)}  # read by the start below
            super().log_trial_start(trial)

    uri = mlflow_tracking_uri(search.mlflow_uri)
    print(f"MLflow: one run per trial in experiment {study!r} at {uri}", flush=True)
    return TaggedMLflow(uri, experiment_name=study, tags={"study": study})


def _wandb_callback(search: SearchConfig, study: str):
    from ray.air.integrations.wandb import WandbLoggerCallback  # imports wandb: only when asked for

    class TaggedWandb(WandbLoggerCallback):
        """Ray's W&B callback (run id = Tune's trial id = ltray's trial_id; trial config as the
        run's config) with each run also tagged by its method."""

        def log_trial_start(self, trial):
            self.kwargs["tags"] = [run_tags(trial_of(trial), trial.config)["method"]]  # passed to wandb.init
            super().log_trial_start(trial)

    project = search.wandb_project or study
    print(f"W&B: one run per trial in project {project!r}, group {study!r}", flush=True)
    return TaggedWandb(project=project, group=study)


# search.loggers name -> builder of its Tune callback; the names are ltray.experiment.LOGGERS
BUILDERS = {"mlflow": _mlflow_callback, "wandb": _wandb_callback}


def tune_callbacks(search: SearchConfig, study: str) -> list:
    """One Tune logger callback per name in ``search.loggers``, for the study named ``study``
    (MLflow experiment; W&B group, and project unless ``search.wandb_project``). Prints where
    the runs go."""
    return [BUILDERS[name](search, study) for name in search.loggers]
