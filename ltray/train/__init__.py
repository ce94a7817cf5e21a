"""Training, without Ray: ``fit`` trains one model with one method and keeps the epoch that is
best on validation. ``loop`` (the steps), ``checkpoint`` (``TrainState`` and its file),
``reporting`` (the contract with Tune and ASHA), ``evaluation`` (outputs and metrics), ``fit``,
``ssp`` (rotation pre-training). ``python -m ltray.train`` trains one method from the shell.

``from ltray.train import Recipe`` keeps working for experiment files written before 0.2
(the recipe is a config group now: ``ltray.config.Recipe``).
"""

from ltray.config.recipe import Recipe
from ltray.train.checkpoint import CHECKPOINT_FILE, TrainState, load_checkpoint, read_checkpoint, save_checkpoint
from ltray.train.evaluation import predict, summarize
from ltray.train.fit import FitResult, fit
from ltray.train.loop import ModelStart, NoSelectableEpoch, TrainingDiverged, TrainingFailed, lr_at
from ltray.train.reporting import ReportClock, Reporting, selected_metrics

__all__ = ["CHECKPOINT_FILE", "FitResult", "ModelStart", "NoSelectableEpoch", "Recipe", "ReportClock", "Reporting",
           "TrainState", "TrainingDiverged", "TrainingFailed", "fit", "load_checkpoint", "lr_at", "predict",
           "read_checkpoint", "save_checkpoint", "selected_metrics", "summarize"]
