"""A study is guarded end to end, on a real Ray: a second run (or a second --resume) on a study
in use is refused naming the first, placed exactly (the first waits at a pause point while the
others start); and a study whose optuna.db was lost and one of whose trials files was cut in
half resumes to the end, rebuilding the search and training that trial again."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from conftest import ROOT
from ltray import results as R

pytestmark = pytest.mark.ray
SETS = ["methods=ce,balanced_softmax", "search.num_samples=2", "train.epochs=3", "train.warmup_epochs=1",
        "resources.in_process=true", "resources.max_concurrent_trials=1"]


def _cmd(ray_head, results, *extra) -> list[str]:
    return [sys.executable, "-m", "ltray.sweep", "experiments/quickstart.py", "--address", ray_head["address"],
            "--results", str(results), "--name", "guarded", "--set", *SETS, *extra]


def test_a_second_run_and_a_second_resume_are_refused_while_one_runs(ray_head, tmp_path):
    marker = tmp_path / "marker"
    env = {**ray_head["env"], "LTRAY_PAUSE": "trial_started", "LTRAY_PAUSE_MARKER": str(marker)}
    first = subprocess.Popen(_cmd(ray_head, tmp_path), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not marker.exists():  # the first run holds the study, its first trial waiting
            assert first.poll() is None and time.time() < deadline, first.stdout.read().decode()[-3000:]
            time.sleep(0.1)
        for extra in ((), ("--resume",)):
            t0 = time.time()
            r = subprocess.run(_cmd(ray_head, tmp_path, *extra), cwd=ROOT, env=ray_head["env"], capture_output=True,
                               text=True, timeout=120)
            assert r.returncode == 2 and "is in use by run" in r.stderr and f"pid {first.pid}" in r.stderr, r.stderr
            assert time.time() - t0 < 60  # refused before Ray starts
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    r = subprocess.run(_cmd(ray_head, tmp_path, "--resume"), cwd=ROOT, env=ray_head["env"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 and "took over the lease" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    rows = R.load_study(str(tmp_path / "guarded"), ("trials",))["trials"].to_pylist()
    assert sorted(t["status"] for t in rows) == ["completed", "completed"]


def test_a_lost_search_and_a_damaged_trials_file_resume_to_the_end(ray_head, tmp_path):
    r = subprocess.run(_cmd(ray_head, tmp_path), cwd=ROOT, env=ray_head["env"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    study = tmp_path / "guarded"
    before = {t["trial_id"]: t for t in R.load_study(str(study), ("trials",))["trials"].to_pylist()}
    (study / "optuna.db").unlink()
    cut = sorted(before)[0]
    path = study / "trials" / f"{cut}.parquet"
    path.write_bytes(path.read_bytes()[:100])
    r = subprocess.run(_cmd(ray_head, tmp_path, "--resume"), cwd=ROOT, env=ray_head["env"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "search state: Optuna's study rebuilt" in r.stdout and "the trial trains again" in r.stdout
    after = {t["trial_id"]: t for t in R.load_study(str(study), ("trials",))["trials"].to_pylist()}
    assert set(after) == set(before) and all(t["status"] == "completed" for t in after.values()), (before, after, r.stdout[-3000:])
    kept = next(t for t in before if t != cut)
    assert after[kept]["finished_at"] == before[kept]["finished_at"]  # not trained again
    assert after[cut]["finished_at"] >= before[cut]["finished_at"]  # trained again, under its own id
    assert len(list((study / "damaged" / "trials").iterdir())) == 1
    trials = optuna.load_study(study_name="guarded", storage=f"sqlite:///{study / 'optuna.db'}").trials
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "COMPLETE"]
