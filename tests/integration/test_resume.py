"""A study survives its driver being killed at any moment, any number of times: one study per
variant is killed at every phase boundary of a trial's life in turn, each kill placed exactly by
a pause point (``ltray.sweep.faults``: the process reaching the point waits there, the test kills
the driver's process group), and resumed after each. Then ``--resume`` finishes it, and every
configuration was trained once: each trial's row written once, its epochs stored once, the one
cut off mid-training gone on from its checkpoint, Optuna told each configuration once.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest

from conftest import ROOT
from ltray import results as R
from ltray.results.search_storage import local_db
from ltray.results.storage import open_store

pytestmark = pytest.mark.ray

# Every phase in a trial's order; the runs in between continue the same study. None: the last
# resume, which must finish it.
KILLS = ("trial_started", "mid_trial", "row_written", "told", "tune_saving", "asked", None)
SETS = ["methods=ce,balanced_softmax,logit_adjusted", "search.num_samples=4", "train.epochs=4",
        "train.warmup_epochs=1", "resources.max_concurrent_trials=1", "resources.checkpoint_every_s=0",
        "resources.report_every_s=0"]


def _args(ray_head, results, storage: str, in_process: bool, per_method: bool) -> list[str]:
    return [sys.executable, "-m", "ltray.sweep", "experiments/quickstart.py", "--address", ray_head["address"],
            "--results", results, "--name", "kills", "--set", *SETS, f"resources.in_process={in_process}",
            *([f"search.storage={storage}"] if storage else []),
            *(["search.per_method=2"] if per_method else [])]  # ce 1, balanced_softmax 1, logit_adjusted 2


def _run_until(args: list[str], env: dict, point: str | None, marker) -> subprocess.CompletedProcess | None:
    """Run the sweep; with a pause point, kill its process group once a process waits there."""
    if point is None:
        return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if marker.exists():
        marker.unlink()
    proc = subprocess.Popen(args, cwd=ROOT, env={**env, "LTRAY_PAUSE": point, "LTRAY_PAUSE_MARKER": str(marker)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 600
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before it reached {point}: {proc.stdout.read().decode()[-3000:]}")
        assert time.time() < deadline, f"never reached {point}"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver (and whatever it started) dies here
    proc.wait()
    return None


@pytest.mark.parametrize("in_process,storage,where,per_method", [
    (True, "", "local", False), (True, "journal", "local", False), (True, "", "s3", False),
    (False, "rdb", "local", False), (True, "", "local", True)],
    ids=["in_process-default", "in_process-journal", "in_process-s3", "train-rdb", "in_process-per_method"])
def test_a_study_killed_at_every_phase_resumes_to_the_end(ray_head, tmp_path, request, in_process, storage, where,
                                                          per_method):
    url = {"journal": f"journal:{tmp_path}/search/journal.log", "rdb": f"sqlite:///{tmp_path}/search/s.db"}.get(storage, "")
    (tmp_path / "search").mkdir()
    results = f"{request.getfixturevalue('s3')['bucket']}/{tmp_path.name}" if where == "s3" else str(tmp_path)
    study = f"{results}/kills"
    base = _args(ray_head, results, url, in_process, per_method)
    written: dict[str, str] = {}  # a final row, once written, is never written again
    for i, point in enumerate(KILLS):
        r = _run_until(base + (["--resume"] if i else []), ray_head["env"], point, tmp_path / "marker")
        if where == "s3" and point:  # a killed run keeps this machine's working copy (at the path computed here)
            assert os.path.isfile(local_db(study)), point
        rows = {t["trial_id"]: t for t in R.load_study(study, ("trials",))["trials"].to_pylist()}
        for tid, row in rows.items():
            if row["status"] in ("completed", "duplicate", "failed"):
                assert written.setdefault(tid, row["finished_at"]) == row["finished_at"], f"{tid} written again"
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    if where == "s3":  # the run that ended removed its working copy; the checks below read the study's copy
        assert not os.path.exists(os.path.dirname(local_db(study)))
    trials = R.load_study(study, ("trials", "epochs"))
    rows = trials["trials"].to_pylist()
    assert len(rows) == 4 and all(t["status"] in ("completed", "duplicate") for t in rows), \
        [(t["trial_id"], t["status"], t["error"]) for t in rows]
    per_trial = {}
    for e in trials["epochs"].to_pylist():
        per_trial.setdefault(e["trial_id"], []).append(e["epoch"])
    for t in rows:
        if t["status"] == "completed":  # every epoch stored once: no trial trained twice
            assert sorted(per_trial[t["trial_id"]]) == [0, 1, 2, 3], t["trial_id"]
    assert any(t["resumed_at"] > 0 for t in rows), "the trial cut off mid-training went on from its checkpoint"
    if per_method:  # each method exactly its budget: knob-less ones their one configuration
        assert Counter(t["method"] for t in rows) == {"ce": 1, "balanced_softmax": 1, "logit_adjusted": 2}
        assert [t["status"] for t in rows].count("duplicate") == 0
    names = ["kills.ce", "kills.balanced_softmax", "kills.logit_adjusted"] if per_method else ["kills"]
    searched = [t for name in names
                for t in optuna.load_study(study_name=name, storage=_storage(url, study, tmp_path)).trials]
    assert [t.state for t in searched].count(optuna.trial.TrialState.COMPLETE) == 4
    assert all(t.state.is_finished() for t in searched), [t.state for t in searched]
    told = sorted(t.user_attrs["trial_ids"][0] for t in searched if t.state == optuna.trial.TrialState.COMPLETE)
    assert told == sorted(t["trial_id"] for t in rows)  # each configuration told once, with its own trial
    by_id = {t["trial_id"]: t for t in rows}
    for t in searched:  # what optuna-dashboard shows is the table's value, after every kill
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == by_id[t.user_attrs["trial_ids"][0]]["val_bal_acc"], (t.number, t.user_attrs)
    assert not open_store(study).exists("lease.json")  # given back at the end


def _storage(url: str, study: str, tmp_path):
    from ltray.results.search_storage import open_storage

    if url or not study.startswith("s3://"):
        return open_storage(url, study, resume=True)
    open_store(study).fetch(str(tmp_path / "copy.db"), "optuna.db")  # the study's own copy, on S3
    return f"sqlite:///{tmp_path / 'copy.db'}"
