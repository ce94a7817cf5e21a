"""The study's one Tune callback: a line per trial result and per finished or failed trial, and
a record of how Tune ended each trial (``outcomes.mark_ended``), keyed by the ltray trial id
(a resumed trial keeps its id; Tune's own differs).

A module-level class, so Tune pickles it by reference with its experiment state.
"""

from __future__ import annotations

from ray import tune

from ltray.core.metrics import VAL_METRICS
from ltray.methods.space import split_config
from ltray.results.disk import FULL
from ltray.sweep import faults
from ltray.sweep.outcomes import DIED, mark_ended
from ltray.sweep.journal import TRIAL_INDEX, trial_of


class Progress(tune.Callback):
    """A line per trial result, one per finished or failed trial; records how Tune ended each trial."""

    def __init__(self, metric: str, study_dir: str):
        self.metric, self.study_dir = metric, study_dir

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "epochs_done" not in result:
            return
        # epochs count from 0 here as in every table (best_epoch, the epochs table, MLflow's epoch)
        metric, head = self.metric, f"[{trial_of(trial)}] {trial.config.get('method')}"
        if "train_loss" in result:  # an epoch: its own value, then the selection so far
            print(f"{head} epoch {result['epoch']}: {metric} {result['epoch_' + metric]:.4f}  "
                  f"(best {result[metric]:.4f} at epoch {result['selected_epoch']})  "
                  f"loss {result['train_loss']:.4f}", flush=True)
        else:  # the trial's result, as stored
            print(f"{head} result: {metric} {result.get(metric, float('nan')):.4f} (best epoch "
                  f"{result['selected_epoch']} of 0-{result['epochs_done'] - 1}, chosen on validation)", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        keep = (*VAL_METRICS, "selected_epoch", "epochs_done", "progress")
        print(f"[{trial_of(trial)}] done: {_knobs(trial.config)}", flush=True)
        mark_ended(self.study_dir, trial_of(trial), "complete", result={k: last[k] for k in keep if k in last},
                   config=_what(trial.config))
        faults.pause_point("told")  # the searcher has told Optuna (Tune calls it first); Tune has not saved yet

    def on_trial_error(self, iteration, trials, trial, **info):
        try:  # Tune's error file lives in the driver's local session folder, not the results disk
            error = open(trial.error_file).read()
        except (OSError, TypeError):
            error = ""
        cut = next((c for c in (FULL, DIED) if c in error), None)
        why = f"{cut}; --resume runs it again" if cut else "see the trials table"
        print(f"[{trial_of(trial)}] FAILED: {_knobs(trial.config)} ({why})", flush=True)
        mark_ended(self.study_dir, trial_of(trial), "error", error=_last_line(error), config=_what(trial.config))

    def get_state(self):
        """Tune asks while it saves its own state (which ltray never reads back)."""
        faults.pause_point("tune_saving")
        return None


def _what(config: dict) -> dict:
    """A trial's method, knobs and repeat, from its Tune config (for its row if it writes none)."""
    method, hp = split_config(config)
    return {"method": method, "hp": hp, "repeat": int(config.get(TRIAL_INDEX, 0))}


def _last_line(traceback_text: str) -> str:
    """The exception line of a traceback (Ray's error files end with it), at most 500 characters."""
    lines = [ln.strip() for ln in traceback_text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def _knobs(config: dict) -> str:
    method, hp = split_config(config)
    return method + (" " + " ".join(f"{k}={v:.4g}" for k, v in hp.items()) if hp else "")
