"""How trials end, and the one writer of ``trials`` rows without a result: a failure of the
trial's own code, a duplicate of a configuration another trial trains, and a trial that ended
without a row (stopped by ASHA, cut off by a killed process or a full disk, or cut off with the
sweep). Also what a finished trial tells the searcher (``stored_result``), how Tune ended each
trial (``mark_ended`` / ``outcomes``) and a duplicate's wait for its original. No Ray here.
"""

from __future__ import annotations

import json
import time
import warnings

import pyarrow.compute as pc

from ltray import results as R
from ltray.config import Experiment, meta_of
from ltray.core.metrics import VAL_METRICS
from ltray.results.rows import empty_row, row_without_result
from ltray.results.schema import TrialMeta, TrialStatus
from ltray.results.storage import open_store
from ltray.sweep import journal
from ltray.sweep.claims import claims


class ProcessDied(RuntimeError):
    """A process or node of the trial died (killed, out of memory, preempted) after Train's own
    restarts: not an error of the trial's code, so no ``failed`` row; ``--resume`` runs it again."""


DIED = "a process of the trial died"  # in every ProcessDied message: the driver finds it in Tune's errors


# ---------------------------------------------------------------- rows without a result

def record_failed(study_dir: str, meta: TrialMeta, error: str, epochs_run: int, wall_s: float) -> None:
    """The row of a trial whose own code failed (diverged, no selectable epoch, an error): final."""
    row = empty_row(meta, status=TrialStatus.FAILED, error=error, epochs_run=epochs_run, wall_s=wall_s)
    R.write_table(study_dir, "trials", meta.trial_id, R.table("trials", row))


def record_duplicate(exp: Experiment, study_dir: str, meta: TrialMeta, original: str, result: dict) -> None:
    """The row of a trial whose configuration ``original`` trained: that trial's row under this
    trial's id, or (the original stopped by ASHA, its row due at the study's end) the result the
    searcher was told of it."""
    rows = R.load_study(study_dir, ("trials",))["trials"]
    row = rows.filter(pc.equal(rows["trial_id"], original)).to_pydict()
    if row["trial_id"]:
        row.update(trial_id=[meta.trial_id], status=[TrialStatus.DUPLICATE], error=[f"same configuration as {original}"])
    else:
        row = row_without_result(meta, TrialStatus.DUPLICATE,
                                 f"same configuration as {original}, which ASHA stopped early", [], result)
    R.write_table(study_dir, "trials", meta.trial_id, R.table("trials", row))


def label_unfinished(exp: Experiment, study_dir: str) -> None:
    """Every trial without a trials row (it has epochs, or Tune ended it) gets a row saying what
    happened to it, from how Tune ended it (:func:`outcomes`): stopped early by ASHA (ended
    without error; its values are the last result Tune gave the searcher), cut off by an error
    that left no row (a killed process, a full disk), or cut off with the sweep itself (no end
    recorded; ``--resume`` ran its configuration again as another trial)."""
    tabs = R.load_study(study_dir, ("trials", "epochs"))
    done = set(tabs["trials"].column("trial_id").to_pylist())
    epochs = tabs["epochs"].to_pylist()
    claimed, ended = claims(study_dir), outcomes(study_dir)
    index = {t: c.index for c in journal.read_all(study_dir) for t in c.trials if t}
    for tid in sorted(({e["trial_id"] for e in epochs} | set(ended)) - done):
        how = ended.get(tid)
        if how is None:
            status, why = TrialStatus.INTERRUPTED, "cut off with the sweep before it finished; --resume trains it again"
        elif how["how"] == "complete":
            status = TrialStatus.STOPPED
            why = f"stopped early by ASHA at {how['result'].get('progress', float('nan')):.0%} of its epochs"
        else:
            status, why = TrialStatus.INTERRUPTED, f"ended without a result: {how['error'] or 'unknown error'}"
        c = claimed.get(tid) or (how or {}).get("config") or {}
        meta = meta_of(exp, tid, c.get("method", ""), c.get("hp", {}), c.get("repeat", 0), index.get(tid, -1))
        rows = [e for e in epochs if e["trial_id"] == tid]
        row = row_without_result(meta, status, why, rows, how["result"] if how else {})
        R.write_table(study_dir, "trials", tid, R.table("trials", row))


# ---------------------------------------------------------------- what the searcher is told

def stored_result(study_dir: str, trial_id: str) -> dict | None:
    """What Tune is told of a finished trial: its row's validation metrics (what the searcher
    and ASHA rank on) and, for the loggers (MLflow, W&B), its test metrics, never selected on."""
    t = R.load_study(study_dir, ("trials",))["trials"]
    with_result = {s for s in TrialStatus if s.has_result}
    rows = [r for r in t.to_pylist() if r["trial_id"] == trial_id and r["status"] in with_result]
    if not rows:
        return None
    return _result_of(rows[0]) | {k: rows[0][k] for k in TEST_REPORTED} | {"progress": 1.0}


def _told(study_dir: str, trial_id: str) -> dict:
    """A stopped trial's row as the result the searcher was told (no finished clock)."""
    t = R.load_study(study_dir, ("trials",))["trials"]
    return _result_of(next(r for r in t.to_pylist() if r["trial_id"] == trial_id))


def _result_of(row: dict) -> dict:
    return {k: row[k] for k in VAL_METRICS} | {"epochs_done": row["epochs_run"], "selected_epoch": row["best_epoch"]}


TEST_REPORTED = ("test_bal_acc", "test_many", "test_medium", "test_few", "test_bal_acc_posthoc")


def wait_for_original(study_dir: str, trial_id: str, timeout_s: float, poll_s: float = 2.0) -> dict:
    """The result of ``trial_id``, which trains the configuration a duplicate re-picked: its
    stored row, or the last result of a trial ASHA stopped. Fails at once when that trial ended
    with an error and no row (killed, a full disk), and after ``timeout_s`` when it shows no end
    at all (its driver died with it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = R.finished_trials(study_dir).get(trial_id)
        if status == TrialStatus.COMPLETED:
            return stored_result(study_dir, trial_id)
        if status == TrialStatus.STOPPED:  # stopped by ASHA (a study resumed since): what the searcher was told of it
            return _told(study_dir, trial_id)
        if status is not None:
            raise RuntimeError(f"the trial {trial_id} with the same configuration ended {status}")
        ended = outcomes(study_dir).get(trial_id)
        if ended is not None and ended["how"] == "complete" and ended["result"]:
            return ended["result"]  # stopped by ASHA: what the searcher was told of it
        if ended is not None:
            why = ended["error"][:300] or "an error"
            raise RuntimeError(f"the trial {trial_id} with the same configuration ended without a result ({why}); "
                               "--resume trains it again")
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {timeout_s:g} s (search.duplicate_wait_s) for trial {trial_id}, which trains "
                               "the same configuration, and it has neither a result nor an end; --resume trains it again")
        time.sleep(poll_s)


# ---------------------------------------------------------------- how Tune ended each trial

def mark_ended(study_dir: str, trial_id: str, how: str, error: str = "", result: dict | None = None,
               config: dict | None = None) -> None:
    """Record how Tune ended a trial ("complete": finished or stopped by the scheduler; "error"),
    with its last result: a trial without a row is then labelled by what happened, and a
    duplicate waiting for it stops waiting."""
    data = json.dumps({"how": how, "error": error, "result": result or {}, "config": config or {}}, default=float)
    try:
        open_store(study_dir).write_bytes(data.encode(), "ended", trial_id)
    except OSError as e:  # a full results disk: the study stops with its own error; the row is unlabelled
        warnings.warn(f"could not record how trial {trial_id} ended in {study_dir}/ended: {e}", stacklevel=2)


def outcomes(study_dir: str) -> dict[str, dict]:
    """trial_id -> {"how", "error", "result", "config"} of every trial Tune has ended in this study."""
    store = open_store(study_dir)
    out = {}
    for info in store.listdir("ended"):
        try:
            out[info.base_name] = json.loads(store.read_bytes("ended", info.base_name))
        except (OSError, ValueError):  # a file being replaced: read again on the next poll
            pass
    return out


def forget_ends(study_dir: str, trial_ids) -> None:
    """Before trials run again (--resume): their recorded ends go, or a trial waiting for one of
    them (a duplicate of its configuration) would fail at once on the old end."""
    store = open_store(study_dir)
    for tid in trial_ids:
        store.remove("ended", tid)
