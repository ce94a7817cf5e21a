"""The study's one Tune callback: a line per trial result and per finished or failed trial, a
record of how Tune ended each trial (``outcomes.mark_ended``), and, at each of Tune's saves, a
whole copy of Tune's state and (for a study on a URI) of the search state.

A module-level class, so Tune pickles it by reference with the study: a resumed study runs the
callback of the ltray that resumes it (the sweep also hands Tune a fresh one on --resume).
"""

from __future__ import annotations

import sqlite3

from ray import tune

from ltray.core.metrics import VAL_METRICS
from ltray.methods.space import split_config
from ltray.results import search_storage
from ltray.results.disk import FULL
from ltray.results.storage import shown
from ltray.sweep import tune_state
from ltray.sweep.outcomes import DIED, mark_ended


class Progress(tune.Callback):
    """A line per trial result, one per finished or failed trial; records how Tune ended each
    trial; at each of Tune's saves, copies its state whole to the study, with a URI study's
    search state."""

    def __init__(self, metric: str, study_dir: str, storage: str):
        self.metric, self.study_dir, self.storage = metric, study_dir, storage
        self.staging = ""  # the driver's folder where Tune saves its state before uploading it

    def on_step_begin(self, iteration, trials, **info):
        if trials and not self.staging:
            self.staging = trials[0].local_experiment_path

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "trial_epoch" not in result:
            return
        metric, head = self.metric, f"[{trial.trial_id}] {trial.config.get('method')}"
        if "train_loss" in result:  # an epoch: its own value, then the selection so far
            print(f"{head} epoch {result['trial_epoch']}: {metric} {result['epoch_' + metric]:.4f}  "
                  f"(selected {result[metric]:.4f}, epoch {result['selected_epoch'] + 1})  "
                  f"loss {result['train_loss']:.4f}", flush=True)
        else:  # the trial's result, as stored
            print(f"{head} result: {metric} {result.get(metric, float('nan')):.4f} (epoch "
                  f"{result['selected_epoch'] + 1} of {result['trial_epoch']}, selected on validation)", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        keep = (*VAL_METRICS, "selected_epoch", "trial_epoch", "progress")
        print(f"[{trial.trial_id}] done: {_knobs(trial.config)}", flush=True)
        mark_ended(self.study_dir, trial.trial_id, "complete", result={k: last[k] for k in keep if k in last},
                   config=_what(trial.config))

    def on_trial_error(self, iteration, trials, trial, **info):
        try:  # Tune's error file lives in the driver's local session folder, not the results disk
            error = open(trial.error_file).read()
        except (OSError, TypeError):
            error = ""
        cut = next((c for c in (FULL, DIED) if c in error), None)
        why = f"{cut}; --resume runs it again" if cut else "see the trials table"
        print(f"[{trial.trial_id}] FAILED: {_knobs(trial.config)} ({why})", flush=True)
        mark_ended(self.study_dir, trial.trial_id, "error", error=_last_line(error), config=_what(trial.config))

    def get_state(self):
        """Tune asks while it saves, right after writing its trials and its searcher's
        state: copied now, Tune's state and the search state are one consistent set."""
        _publish(self.storage, self.study_dir, self.staging)
        return None  # nothing of its own to restore


def _publish(storage: str, study_dir: str, staging: str) -> None:
    """Copy the search state to the study's URI, then Tune's saved state to the study; a failed
    copy (the store unreachable for a moment, a full disk) is a warning, and Tune's next save
    copies both again."""
    try:
        search_storage.publish(storage, study_dir)
        if staging:  # known once Tune has a trial
            tune_state.snapshot_tune_state(staging, study_dir)
    except (OSError, sqlite3.Error) as e:
        print(f"warning: could not copy the search and Tune state to {shown(study_dir)}: {e}", flush=True)


def _what(config: dict) -> dict:
    """A trial's method, knobs and repeat, from its Tune config (for its row if it writes none)."""
    method, hp = split_config(config)
    return {"method": method, "hp": hp, "repeat": int(config.get("__trial_index__", 0))}


def _last_line(traceback_text: str) -> str:
    """The exception line of a traceback (Ray's error files end with it), at most 500 characters."""
    lines = [ln.strip() for ln in traceback_text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def _knobs(config: dict) -> str:
    method, hp = split_config(config)
    return method + (" " + " ".join(f"{k}={v:.4g}" for k, v in hp.items()) if hp else "")
