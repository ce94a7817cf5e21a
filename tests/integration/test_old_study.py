"""A study started by an older ltray resumes under this one. The old ltray here is the last
commit of 0.1 (flat modules, Tune's saved state restored on --resume, in-process checkpoints in
Tune's trial folders, no search journal), taken from this repository's history and run as a Ray
Job whose working_dir is that old tree, so its driver and trial processes import the old code.
This ltray finds the old study's configurations in Optuna and its rows, and the killed trial's
checkpoint in Tune's trial folder."""

import os
import signal
import subprocess
import tarfile
import time

import pytest

from conftest import ROOT, run_cli
from ltray import results as R

pytestmark = pytest.mark.ray

OLD = "9120648"  # the last commit with the flat modules (ltray/sweep.py, ltray/space.py, ltray/recovery.py)
# in-process trials long enough (~15 s each) that the driver is killed mid-trial, before any finishes
SETS = ["methods=ce,balanced_softmax", "search.num_samples=2", "train.epochs=300", "train.warmup_epochs=1",
        "resources.in_process=true", "resources.max_concurrent_trials=1", "resources.checkpoint_every_s=0"]


def _old_tree(dest) -> str:
    """The old commit's ltray and experiments, from this repository's history."""
    archive = dest / "old.tar"
    r = subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), f"{OLD}^{{commit}}", "ltray",
                        "experiments"], capture_output=True, text=True)
    assert r.returncode == 0, f"needs this repository's history with commit {OLD} (not a shallow clone): {r.stderr}"
    with tarfile.open(archive) as t:
        t.extractall(dest / "old", filter="data")
    return str(dest / "old")


def _kill_when_mid_trial(client, job_id: str, study) -> None:
    """SIGKILL the old sweep's driver once the first trial has a checkpoint in Tune's trial
    folder and no row."""
    deadline = time.time() + 300
    while True:
        info = client.get_job_info(job_id)
        assert not info.status.is_terminal(), client.get_job_logs(job_id)[-3000:]
        assert time.time() < deadline, "the old study never reached a trial mid-training"
        saved = list((study / "ray" / "tune").glob("run_trial_*/checkpoint_*/state.pt"))
        if saved and info.driver_info is not None:
            assert not list(study.glob("trials/*.parquet")), "a trial finished before the kill"
            os.kill(int(info.driver_info.pid), signal.SIGKILL)
            return
        time.sleep(0.2)


def test_a_study_started_before_the_move_resumes_after_it(ray_head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    old, results = _old_tree(tmp_path), tmp_path / "results"
    client = JobSubmissionClient(ray_head["dashboard"])
    job = client.submit_job(
        entrypoint=f"python -m ltray.sweep experiments/quickstart.py --results {results} --name old --set "
                   + " ".join(SETS),
        runtime_env={"working_dir": old, "env_vars": {"TUNE_GLOBAL_CHECKPOINT_S": "1"}})  # Tune saves every second
    _kill_when_mid_trial(client, job, results / "old")
    for _ in range(60):
        if client.get_job_status(job).is_terminal():
            break
        time.sleep(1)
    r = run_cli(["-m", "ltray.sweep", "experiments/quickstart.py", "--address", ray_head["address"], "--results",
                 str(results), "--name", "old", "--resume", "--set", *SETS], env=ray_head["env"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trials = R.load_study(str(results / "old"), ("trials",))["trials"].to_pylist()
    assert sorted((t["method"], t["status"]) for t in trials) == [("balanced_softmax", "completed"), ("ce", "completed")]
    assert max(t["resumed_at"] for t in trials) > 0  # the killed trial went on from its checkpoint
    epochs = R.load_study(str(results / "old"), ("epochs",))["epochs"]
    assert epochs.num_rows == 2 * 300  # every epoch of both trials stored once
