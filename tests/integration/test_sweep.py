"""Real sweeps on a real Ray head node (one per pytest run): tables, resume, job submission."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import optuna
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, run_cli
from ltray import results as R
from ltray.methods.space import split_config
from ltray.core.metrics import per_class_accuracy
from ltray.core.posthoc import pc_adjust, tau_curve
from ltray.core.longtail import shifted_test_indices
from ltray.datasets import DataConfig, load_data
from ltray.results.provenance import code_version
from ltray.results.rows import SHIFT_ADJUSTMENTS

pytestmark = pytest.mark.ray
TINY = ["train.epochs=2", "train.warmup_epochs=1", "search.num_samples=2", "methods=ce,balanced_softmax"]


def _sweep(ray_head, results, *sets, extra=()):
    return run_cli(["-m", "ltray.sweep", "experiments/quickstart.py", "--address", ray_head["address"],
                    "--results", str(results), *extra, "--set", *TINY, *sets], env=ray_head["env"])


def test_tiny_study_writes_every_table_and_values_match_the_logits(ray_head, tmp_path):
    r = _sweep(ray_head, tmp_path, "resources.num_workers=2", "resources.cpus_per_worker=0.5", extra=["--name", "tiny"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "epoch 1: val_bal_acc" in r.stdout and "python -m dashboard --results" in r.stdout
    study = tmp_path / "tiny"
    for f in ("experiment.py", "experiment.json", "requirements.txt", "optuna.db"):
        assert (study / f).is_file(), f
    assert "torch==" in (study / "requirements.txt").read_text()
    tabs = R.load_study(str(study))
    for name, schema in R.SCHEMAS.items():
        assert tabs[name].schema == schema
        if name in ("stages", "virtual", "expert_logits"):  # only shared stages (DiVE, cRT, SSP) and multi-expert methods write these
            assert tabs[name].num_rows == 0
            continue
        assert tabs[name].num_rows > 0, name
        for f in (study / name).glob("*.parquet"):  # on disk too, float64 metrics
            assert pq.read_schema(f).equals(schema, check_metadata=False)
    trials = tabs["trials"].to_pylist()
    assert sorted(t["method"] for t in trials) == ["balanced_softmax", "ce"]
    data = load_data(DataConfig(name="digits-lt", rho=100))
    counts = data.train_counts
    logits = tabs["logits"].to_pylist()
    for t in trials:
        assert t["status"] == "completed" and t["num_workers"] == 2 and t["epochs_run"] == 2
        assert t["seed"] == 0 and t["subset_hash"] == data.subset_hash
        rows = {s: [x for x in logits if x["trial_id"] == t["trial_id"] and x["split"] == s] for s in ("val", "test")}
        f = {s: np.array([x["logits"] for x in rows[s]]) for s in rows}
        y = {s: np.array([x["label"] for x in rows[s]]) for s in rows}
        assert np.array_equal(y["test"], data.test.y.numpy())
        for s in ("val", "test"):
            pc = per_class_accuracy(f[s], y[s], 10)
            assert t[f"{s}_bal_acc"] == pytest.approx(np.nanmean(pc))
        # balanced softmax's logits carry no training prior: post-hoc rules divide out a uniform one
        balanced = t["method"] == "balanced_softmax"
        prior = np.full(10, 0.1) if balanced else counts / counts.sum()
        curve = tau_curve(f["val"], y["val"], prior, 3.0)
        assert t["tau_star"] == (0.0 if balanced else pytest.approx(curve.tau_star))
        adj = f["test"] - t["tau_star"] * np.log(prior)
        assert t["test_bal_acc_posthoc"] == pytest.approx(np.nanmean(per_class_accuracy(adj, y["test"], 10)))
        # one shifted set, PC with the true prior, recomputed
        idx = shifted_test_indices(y["test"], counts, 50, "forward")
        true = np.bincount(y["test"][idx], minlength=10) / idx.size
        src = np.full(10, 0.1) if t["method"] == "balanced_softmax" else counts / counts.sum()
        pred = pc_adjust(f["test"][idx], src, np.clip(true, 1e-12, None)).numpy().argmax(1)
        shift = [s for s in tabs["shifts"].to_pylist() if s["trial_id"] == t["trial_id"]
                 and s["shift"] == "forward50" and s["adjustment"] == "pc_true"]
        assert shift[0]["accuracy"] == pytest.approx(float((pred == y["test"][idx]).mean()), abs=1e-6)
        assert len([e for e in tabs["epochs"].to_pylist() if e["trial_id"] == t["trial_id"]]) == 2
    assert tabs["shifts"].num_rows == 2 * 11 * len(SHIFT_ADJUSTMENTS)
    assert {t["code_version"] for t in trials} == {code_version()}  # the workers ran this code
    _assert_optuna_was_told_the_table(study)
    # a second run under the same name refuses, and changes nothing
    again = _sweep(ray_head, tmp_path, "resources.num_workers=2", "resources.cpus_per_worker=0.5", extra=["--name", "tiny"])
    assert again.returncode == 2 and "--resume" in again.stderr
    assert len(R.load_study(str(study))["trials"]) == 2


def _assert_optuna_was_told_the_table(study):
    """One definition: every Optuna trial's value is the trials table's val_bal_acc of the same
    configuration (the selected epoch's, not the last epoch's)."""

    storage = f"sqlite:///{study / 'optuna.db'}"
    told = []  # one Optuna study, or one per method (search.per_method: "<study>.<method>")
    for name in optuna.get_all_study_names(storage):
        told += [(name, t) for t in optuna.load_study(study_name=name, storage=storage).trials]
    rows = R.load_study(str(study), ("trials",))["trials"].to_pylist()
    assert len(told) == len(rows)
    for name, t in told:
        assert t.state == optuna.trial.TrialState.COMPLETE, t
        method = t.params.get("method") or name.rsplit(".", 1)[1]
        _, hp = split_config({"method": method, **t.params})
        same = [r for r in rows if r["method"] == method and dict(r["params"] or []) == pytest.approx(hp)]
        assert same and all(t.value == r["val_bal_acc"] for r in same), (t.params, t.value, same)
    return [t for _, t in told], rows


def test_asha_study_one_definition_from_searcher_to_summary(ray_head, tmp_path):
    """In-process trials under ASHA on progress, with a recipe whose last epoch is worse than
    its best: Optuna, the trials table (stopped trials included), the CLI summary and
    ltray.report all carry the selected epoch's value."""
    from ltray.report import method_summary

    r = _sweep(ray_head, tmp_path, "methods=ce,logit_adjusted", "search.num_samples=6", "search.asha=true",
               "search.grace_epochs=1", "train.epochs=6", "train.lr=1.0", "train.warmup_epochs=6",
               "train.batch_size=64", "train.weight_decay=0", "resources.in_process=true", "resources.report_every_s=0",
               "resources.max_concurrent_trials=2", extra=["--name", "asha"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    told, rows = _assert_optuna_was_told_the_table(tmp_path / "asha")
    assert len(rows) == 6 and {t["status"] for t in rows} <= {"completed", "stopped", "duplicate"}
    # the case that matters: a trial whose last reported epoch is not its best
    assert any(0 <= t["best_epoch"] < t["epochs_run"] - 1 for t in rows if t["status"] != "duplicate")
    for t in rows:
        if t["status"] == "stopped":
            assert re.search(r"stopped early by ASHA at \d+% of its epochs", t["error"])
    summary = {ln.split()[0]: [float(x) for x in ln.split()[1:]] for ln in r.stdout.splitlines()
               if ln.split() and ln.split()[0] in ("ce", "logit_adjusted") and len(ln.split()) == 8}
    for m in method_summary(R.load_study(str(tmp_path / "asha"), ("trials",))["trials"]):
        assert summary[m["method"]][1] == pytest.approx(m["val_bal_acc"]["mean"] * 100, abs=0.006)


def test_per_method_budgets_with_a_shared_knob_one_definition_to_the_budget_table(ray_head, tmp_path):
    """search.per_method with weight decay shared: each method its budget (ce: 3, as weight decay
    gives it a knob), the searcher told the table, and the CLI summary, ltray.report's methods
    table, the budget table's last budget and the dashboard's budget figure all the same numbers."""
    from dashboard import compare
    from ltray.report import budget_curves, method_summary, search_settings

    r = _sweep(ray_head, tmp_path, "methods=ce,logit_adjusted", "search.per_method=3",
               "search.shared=train.weight_decay", "search.ranges.train.weight_decay=1e-5,1e-2",
               "resources.in_process=true", "resources.max_concurrent_trials=2", extra=["--name", "budget"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    study = tmp_path / "budget"
    _, rows = _assert_optuna_was_told_the_table(study)
    assert sorted((t["method"], t["config_index"]) for t in rows) == [("ce", 0), ("ce", 1), ("ce", 2),
                                                                      ("logit_adjusted", 0), ("logit_adjusted", 1),
                                                                      ("logit_adjusted", 2)]
    assert all("train.weight_decay" in dict(t["params"]) for t in rows)
    trials = R.load_study(str(study), ("trials",))["trials"]
    summary = {ln.split()[0]: [float(x) for x in ln.split()[1:]] for ln in r.stdout.splitlines()
               if ln.split() and ln.split()[0] in ("ce", "logit_adjusted") and len(ln.split()) == 8}
    report = run_cli(["-m", "ltray.report", str(study), "--table", "budget"])
    assert report.returncode == 0, report.stderr
    test_lines = report.stdout.split("\n\n")[0].splitlines()
    budget = {ln.split()[0]: [float(x) for x in ln.split()[2:]] for ln in test_lines if ln.split()[0] in summary}
    info = {line["method"]: line for line in compare.budget_info(trials, search_settings(str(study)))["lines"]}
    for m, c in zip(method_summary(trials), budget_curves(trials)):
        val, test = m["val_bal_acc"]["mean"] * 100, m["test_bal_acc"]["mean"] * 100
        assert summary[m["method"]][1:3] == pytest.approx([val, test], abs=0.006)
        assert budget[m["method"]][-1] == pytest.approx(test, abs=0.006)
        assert info[m["method"]]["test"][-1] == pytest.approx(test) and info[m["method"]]["val"][-1] == pytest.approx(val)
        assert c["points"][-1]["trial_ids"] == m["trial_ids"]


def test_submit_as_a_ray_job_to_a_real_head_with_repeats(ray_head, tmp_path):
    r = run_cli(["-m", "ltray.submit", "--address", ray_head["dashboard"], "experiments/quickstart.py",
                 "--results", str(tmp_path), "--name", "job", "--set", *TINY, "search.num_samples=1", "methods=ce",
                 "repeats=2"], env=ray_head["env"], timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    assert "submitted job" in r.stdout and "SUCCEEDED" in r.stdout
    trials = R.load_study(str(tmp_path / "job"))["trials"].to_pylist()
    assert len(trials) == 2 and {t["status"] for t in trials} == {"completed"}
    # one configuration, two seeds: each repeat is its own row with its own seed
    assert sorted((t["seed"], t["repeat"]) for t in trials) == [(0, 0), (1, 1)]
    assert trials[0]["subset_hash"] != trials[1]["subset_hash"]  # repeat_subsets: each seed its own subset
    assert trials[0]["test_bal_acc"] != trials[1]["test_bal_acc"]


def test_submit_refuses_bad_input_before_submitting(tmp_path):
    r = run_cli(["-m", "ltray.submit", "--address", "http://127.0.0.1:9", "experiments/quickstart.py",
                 "--set", "methods=ce,arcface"])
    assert r.returncode == 2 and "unknown method 'arcface'" in r.stderr
    outside = tmp_path / "x.py"
    outside.write_text((ROOT / "experiments" / "quickstart.py").read_text())
    r = run_cli(["-m", "ltray.submit", "--address", "http://127.0.0.1:9", str(outside)])
    assert r.returncode == 2 and "outside the project" in r.stderr


def test_a_diverging_trial_is_recorded_as_failed_and_the_others_finish(ray_head, tmp_path):
    r = _sweep(ray_head, tmp_path, "recipe_overrides.ce.lr=1e30", "train.warmup_epochs=0",
               "resources.max_concurrent_trials=2", extra=["--name", "nan"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    trials = {t["method"]: t for t in R.load_study(str(tmp_path / "nan"))["trials"].to_pylist()}
    assert trials["ce"]["status"] == "failed" and "TrainingDiverged: loss became nan" in trials["ce"]["error"]
    assert trials["balanced_softmax"]["status"] == "completed"
    assert "FAILED" in r.stdout and "failed: TrainingDiverged" in r.stdout
    con = sqlite3.connect(tmp_path / "nan" / "optuna.db")
    assert sorted(s for (s,) in con.execute("select state from trials")) == ["COMPLETE", "FAIL"]


@pytest.mark.parametrize("in_process,process", [(False, "RayTrainWorker"), (True, "ImplicitFunc")])
def test_a_killed_trial_process_resumes_from_its_last_checkpoint(ray_head, tmp_path, in_process, process):
    """The process running fit is SIGKILLed: a Ray Train worker (restarted by Train) or, for an
    in-process trial, Tune's trial actor (restarted by Tune)."""
    import torch

    from ltray.config import apply_overrides, load_experiment
    from ltray.train import fit

    epochs = 12
    sets = ["methods=ce", "search.num_samples=1", f"train.epochs={epochs}", "train.warmup_epochs=1",
            "resources.checkpoint_every_s=0", "resources.max_failures=1", f"resources.in_process={in_process}"]
    args = [sys.executable, "-m", "ltray.sweep", "experiments/quickstart.py", "--address", ray_head["address"],
            "--results", str(tmp_path), "--name", "kill", "--set", *sets]
    proc = subprocess.Popen(args, cwd=ROOT, env=ray_head["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    _kill_mid_trial(ray_head, proc, tmp_path / "kill" / "epochs", process)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    tabs = R.load_study(str(tmp_path / "kill"))
    (trial,) = tabs["trials"].to_pylist()
    assert trial["status"] == "completed"
    # from the last checkpoint Ray had persisted, not from epoch 0, and with epochs left to train;
    # how far it got before the kill landed depends on the machine (in-process epochs are fast)
    assert 1 <= trial["resumed_at"] < epochs
    assert sorted(e["epoch"] for e in tabs["epochs"].to_pylist()) == list(range(epochs))
    # the same trial without the kill, here: same seed, data order and augmentation, one thread
    # as in the worker; a resumed run is bit-for-bit the same up to float summation order, so
    # the test accuracy may differ by at most one of the 400 test images
    exp = apply_overrides(load_experiment(ROOT / "experiments" / "quickstart.py"), sets)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = fit(load_data(exp.data), "ce", None, exp.model.name, exp.train, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert abs(trial["test_bal_acc"] - ref.metrics["test_bal_acc"]) <= 1 / 400 + 1e-12


def _kill_mid_trial(ray_head, proc, epochs_dir, process: str) -> None:
    """SIGKILL this cluster's processes of class ``process`` once the trial has 3 epochs stored;
    they are found through Ray's state API (never by name among the machine's processes)."""
    from ray.util.state import list_actors

    deadline = time.time() + 400
    while True:
        assert proc.poll() is None and time.time() < deadline, "trial ended before a worker could be killed"
        files = list(epochs_dir.glob("*.parquet")) if epochs_dir.is_dir() else []
        if files and pq.read_table(files[0]).num_rows >= 3:
            actors = list_actors(address=ray_head["dashboard"], filters=[("class_name", "=", process),
                                                                         ("state", "=", "ALIVE")])
            for a in actors:
                os.kill(int(a.pid), signal.SIGKILL)  # the process training dies mid-trial
            if actors:
                return
        time.sleep(0.2)


def test_a_trial_whose_worker_died_after_trains_restarts_runs_again_on_resume(ray_head, tmp_path):
    """No restarts left (max_failures=0): the trial is cut off, not failed; --resume trains it
    from its last checkpoint, as it does a trial cut off with its driver."""
    args = [sys.executable, "-m", "ltray.sweep", "experiments/quickstart.py", "--address", ray_head["address"],
            "--results", str(tmp_path), "--name", "died", "--set", "methods=ce", "search.num_samples=1",
            "train.epochs=12", "train.warmup_epochs=1", "resources.checkpoint_every_s=0", "resources.max_failures=0"]
    proc = subprocess.Popen(args, cwd=ROOT, env=ray_head["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    _kill_mid_trial(ray_head, proc, tmp_path / "died" / "epochs", "RayTrainWorker")
    out, _ = proc.communicate(timeout=600)
    # its only trial has no result: the sweep says so and exits 1, the way to go on named
    assert proc.returncode == 1 and "a process of the trial died; --resume runs it again" in out, out[-4000:]
    assert "no trial of" in out and "produced a result (1 rows: interrupted)" in out, out[-4000:]
    (trial,) = R.load_study(str(tmp_path / "died"), ("trials",))["trials"].to_pylist()
    assert trial["status"] == "interrupted" and "a process of the trial died (ActorDiedError" in trial["error"], trial
    r = subprocess.run(args + ["--resume"], cwd=ROOT, env=ray_head["env"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (again,) = R.load_study(str(tmp_path / "died"), ("trials",))["trials"].to_pylist()
    assert again["trial_id"] == trial["trial_id"] and again["status"] == "completed"
    assert 1 <= again["resumed_at"] < 12  # from its last checkpoint


def test_an_unwritable_results_folder_is_refused_before_ray_starts(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder")
    for results in ("/proc/ltray-results", str(blocker / "results")):
        r = run_cli(["-m", "ltray.sweep", "experiments/quickstart.py", "--results", results])
        assert r.returncode == 2 and "cannot write results under" in r.stderr and "--resume" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def _fill(folder):
    """Write zeros under folder until the disk says ENOSPC."""
    with open(os.path.join(folder, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 2**20)
                f.flush()
        except OSError:
            pass


def test_a_full_disk_stops_the_study_clearly_and_resume_finishes_it(ray_head, tmp_path):
    """A real full disk (a 48 MiB tmpfs) mid-trial: one clear error, the finished trial kept, and
    --resume finishes the study once space is freed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("needs to mount a small tmpfs (root)")
    try:
        args = [sys.executable, "-m", "ltray.sweep", "experiments/quickstart.py", "--address", ray_head["address"],
                "--results", str(disk), "--name", "full", "--set", "methods=ce", "search.num_samples=1", "repeats=2",
                "train.epochs=40", "train.warmup_epochs=1", "resources.max_concurrent_trials=1",
                "resources.checkpoint_every_s=0", "resources.min_free_mb=1"]
        proc = subprocess.Popen(args, cwd=ROOT, env=ray_head["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        study, deadline = disk / "full", time.time() + 400
        while True:  # fill the disk once the second trial has reported an epoch, mid-training
            assert proc.poll() is None and time.time() < deadline, "the study ended before the disk could fill"
            done = {p.stem for p in study.glob("trials/*.parquet")}
            running = {p.stem for p in study.glob("epochs/*.parquet")} - done
            if done and running:
                break
            time.sleep(0.1)
        _fill(disk)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 2, out[-3000:] + err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: results disk full") and "1 of 2 trials did not finish" in last, err[-3000:]
        assert "--resume" in last and "results disk full; --resume runs it again" in out
        (first,) = done
        kept = {p: p.stat().st_mtime_ns for p in study.glob(f"*/{first}.parquet")}
        assert len(R.load_study(str(study))["trials"]) == 1
        os.remove(disk / "filler")
        r = subprocess.run(args + ["--resume"], cwd=ROOT, env=ray_head["env"], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        trials = R.load_study(str(study))["trials"].to_pylist()
        assert sorted(t["seed"] for t in trials if t["status"] == "completed") == [0, 1], (trials, r.stdout[-3000:])
        # the trial the disk cut off ran again from its start under another id, unless Tune's
        # state already held it; its partial curve is kept and marked
        cut = [t for t in trials if t["status"] != "completed"]
        assert all(t["status"] == "interrupted" and t["seed"] == 1 and t["method"] == "ce" for t in cut), cut
        assert {p: p.stat().st_mtime_ns for p in study.glob(f"*/{first}.parquet")} == kept  # not trained again
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
