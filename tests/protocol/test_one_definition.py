"""One definition of every selected number, and the other study-protocol fixes of issue 10:
what a trial reports to the searcher, which prior its post-hoc rules divide out, which
configuration every view selects, which subset a repeat uses, how a trial without a row is
labelled, and a trial that cannot pick a best epoch. No Ray here (tests/test_sweep.py runs the
same checks through a real study)."""

import dataclasses
import re
import time

import numpy as np
import pytest

from dashboard import figures
from fixtures_study import trial_row
from ltray.results.disk import FULL
from ltray.sweep import outcomes
from ltray import results as R
from ltray.core.metrics import VAL_METRICS
from ltray.core.longtail import shifted_test_indices
from ltray.datasets import DataConfig, Split, load_data
from ltray.errors import LtrayError
from ltray.results.provenance import code_version
from ltray.results.rows import epoch_rows, trial_tables
from ltray.config import Experiment, resolve_trial, trial_data, validate
from ltray.methods import get_method, logits_are_balanced
from ltray.report import method_summary
from ltray.train import NoSelectableEpoch, Recipe, Reporting, fit

# digits-lt, seed 0: validation balanced accuracy peaks at epoch 5 of 6 (0.373) and ends at 0.28
# (measured 2026-11-25); a warm-up to lr 1.0 over the whole run makes the last epoch the noisiest
PEAKS_EARLY = Recipe(epochs=6, lr=1.0, warmup_epochs=6, batch_size=64, weight_decay=0.0)


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(name="digits-lt", rho=100))


def test_every_report_carries_the_selected_epoch_so_the_last_one_is_the_stored_result(digits):
    seen = []
    res = fit(digits, "ce", recipe=PEAKS_EARLY, seed=0, reporting=Reporting(lambda m, c: seen.append(m)))
    assert res.best_epoch < len(res.history) - 1, "the recipe must make the last epoch worse than the best"
    last = seen[-1]
    for k in VAL_METRICS:  # what Tune hands the searcher == what the trials table stores
        assert last[k] == pytest.approx(res.metrics[k], abs=1e-12), k
    assert last["selected_epoch"] == res.best_epoch
    # ASHA never sees a finished clock while the trial still has its tables to write
    assert "progress" not in last and all(m["progress"] < 1 for m in seen[:-1])
    assert last["epoch_val_bal_acc"] == res.history[-1]["val_bal_acc"] != last["val_bal_acc"]
    # every report says the best epoch so far, never a later one
    for m in seen:
        so_far = [h for h in res.history if h["epoch"] <= m["epoch"]]
        assert m["val_bal_acc"] == max(h["val_bal_acc"] for h in so_far)


def test_progress_is_the_fraction_of_the_trials_own_epochs(digits):
    """ASHA's clock: cRT trains its classifier for its own epoch count, not train.epochs."""
    exp = Experiment(train=Recipe(epochs=30))
    recipe = resolve_trial(exp, "crt", {"epochs": 4}).recipe
    assert recipe.epochs == 4 and recipe.sampler == "balanced"
    seen = []
    fit(digits, "ce", recipe=dataclasses.replace(recipe, sampler="random"), seed=0,
        reporting=Reporting(lambda m, c: seen.append(m.get("progress"))))
    assert seen == [0.25, 0.5, 0.75, None]  # the last epoch's clock comes with the stored result (1.0)


def test_no_finite_validation_epoch_is_a_named_trial_failure(digits):
    empty = Split(y=digits.val.y[:0], x=digits.val.x[:0])
    data = dataclasses.replace(digits, val=empty)
    with pytest.raises(NoSelectableEpoch, match="no epoch of 2 had a finite validation"):
        fit(data, "ce", recipe=Recipe(epochs=2, warmup_epochs=0), seed=0)


def test_a_trial_without_a_selectable_epoch_ends_as_a_recorded_failure(tmp_path, digits, monkeypatch):
    from ltray.sweep.trial import LocalApi, TrialSpec, train_trial

    empty = dataclasses.replace(digits, val=Split(y=digits.val.y[:0], x=digits.val.x[:0]))
    monkeypatch.setattr("ltray.sweep.trial.load_data", lambda cfg: empty)
    exp = Experiment(name="nan", train=Recipe(epochs=2, warmup_epochs=0))
    train_trial(TrialSpec.build(exp, str(tmp_path), "t0", "ce", {}, 0), LocalApi(), 0, 0)
    row = R.load_study(str(tmp_path), ("trials",))["trials"].to_pylist()[0]
    assert row["status"] == "failed" and row["error"].startswith("NoSelectableEpoch: no epoch of 2")


def test_a_trial_whose_process_died_gets_no_failed_row_and_a_code_error_does(tmp_path):
    """A killed worker (Train's restarts spent) is not the trial's fault: recorded as failed,
    --resume would never run it again."""
    import ray.exceptions as rex
    from ray.train import WorkerGroupError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    from ltray.sweep.driver import _record_failure
    from ltray.sweep.trial import TrialSpec

    spec = TrialSpec.build(Experiment(name="died"), str(tmp_path), "t0", "ce", {}, 0)
    killed = WorkerGroupError("Training failed due to worker errors:", {
        0: WorkerHealthCheckFailedError("A worker health check failed.", failure=rex.ActorDiedError())})
    with pytest.raises(outcomes.ProcessDied, match=f"{outcomes.DIED} \\(ActorDiedError: "):
        _record_failure(spec, killed, 1.0)
    assert R.finished_trials(str(tmp_path)) == {}
    wrapped = RuntimeError("the controller ended")
    wrapped.__cause__ = rex.NodeDiedError("node lost")
    with pytest.raises(outcomes.ProcessDied, match="NodeDiedError: node lost"):
        _record_failure(spec, wrapped, 1.0)
    _record_failure(spec, WorkerGroupError("Training failed due to worker errors:", {0: ValueError("a bug")}), 1.0)
    assert R.finished_trials(str(tmp_path)) == {"t0": "failed"}


def test_class_balanced_sampling_means_balanced_logits():
    exp = Experiment(methods=("ce", "crt", "balanced_softmax"))
    assert logits_are_balanced(get_method("crt"), resolve_trial(exp, "crt").recipe)
    assert logits_are_balanced(get_method("balanced_softmax"), resolve_trial(exp, "balanced_softmax").recipe)
    assert not logits_are_balanced(get_method("ce"), resolve_trial(exp, "ce").recipe)
    balanced_ce = dataclasses.replace(exp, train=dataclasses.replace(exp.train, sampler="balanced"))
    assert logits_are_balanced(get_method("ce"), resolve_trial(balanced_ce, "ce").recipe)


def test_post_hoc_rules_do_not_divide_a_balanced_trials_prior_out_again():
    """A known answer: a classifier whose logits are already balanced and right on every image
    (what class-balanced sampling aims at) stays right under the uniform target; dividing the
    training prior out of it again (the old cRT treatment) breaks the rare-class-adjacent ones."""
    rng = np.random.default_rng(0)
    counts = np.array([400, 120, 40, 12, 4])
    C = counts.size

    def split(n_per):
        y = np.repeat(np.arange(C), n_per)
        f = rng.normal(0, 1, (y.size, C))
        f[np.arange(y.size), y] = f.max(1) + 0.5  # correct, by a margin smaller than log(400 / 4) = 4.6
        return f.astype(np.float32), y

    (fv, yv), (ft, yt) = split(30), split(60)
    exp = Experiment(methods=("crt",))
    meta = R.TrialMeta(study="s", trial_id="t", method="crt", params={"epochs": 10}, seed=0, repeat=0,
                       dataset="digits-lt", rho=100.0, model="cnn-small", num_workers=1)
    common = dict(meta=meta, tau_max=3.0, val_logits=fv, val_y=yv, test_logits=ft, test_y=yt, train_counts=counts,
                  history=[], best_epoch=0, wall_s=0.0)
    fixed = trial_tables(balanced=logits_are_balanced(get_method("crt"), resolve_trial(exp, "crt").recipe), **common)
    shifted = {(r[0], r[1]): r[2] for r in zip(fixed["shifts"]["shift"], fixed["shifts"]["adjustment"],
                                                  fixed["shifts"]["accuracy"])}
    assert shifted[("uniform", "none")] == 1.0
    assert shifted[("uniform", "pc_true")] == 1.0 and shifted[("uniform", "posthoc_tau")] == 1.0
    assert fixed["trials"]["test_bal_acc_posthoc"][0] == 1.0 and fixed["trials"]["test_bal_acc_posthoc_tau1"][0] == 1.0
    assert fixed["trials"]["tau_star"][0] == 0.0
    # PC with the true prior of a forward shift: exactly argmax(f + log p_t), nothing divided out
    idx = shifted_test_indices(yt, counts, 50, "forward")
    p_t = np.bincount(yt[idx], minlength=C) / idx.size
    brute = float((np.argmax(ft[idx] + np.log(np.clip(p_t, 1e-12, None)), 1) == yt[idx]).mean())
    assert shifted[("forward50", "pc_true")] == pytest.approx(brute)
    double = trial_tables(balanced=False, **common)  # the old treatment, for contrast
    old = {(r[0], r[1]): r[2] for r in zip(double["shifts"]["shift"], double["shifts"]["adjustment"],
                                            double["shifts"]["accuracy"])}
    assert old[("uniform", "pc_true")] < 0.95 and double["trials"]["test_bal_acc_posthoc_tau1"][0] < 0.95


def _trials(rows):
    return R.table("trials", {k: sum((r[k] for r in rows), []) for k in rows[0]})


def test_cli_report_and_dashboard_select_the_same_configuration_by_its_mean(tmp_path, capsys):
    """Config A has the luckiest seed (val 0.90) but mean 0.60; config B has mean 0.70. Every
    view picks B and shows its seeds' mean."""
    from ltray.sweep.cli import print_summary

    rows = [trial_row("a0", "logit_adjusted", {"tau": 1.0}, 0, 0.90, 0.50),
            trial_row("a1", "logit_adjusted", {"tau": 1.0}, 1, 0.30, 0.40),
            trial_row("b0", "logit_adjusted", {"tau": 2.0}, 0, 0.72, 0.66),
            trial_row("b1", "logit_adjusted", {"tau": 2.0}, 1, 0.68, 0.62)]
    for r in rows:
        R.write_table(str(tmp_path), "trials", r["trial_id"][0], R.table("trials", r))
    trials = R.load_study(str(tmp_path), ("trials",))["trials"]
    report = method_summary(trials)[0]
    board = figures.best_per_method_info(trials)[0]
    print_summary(str(tmp_path))
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("logit_adjusted"))
    cli = [float(x) for x in line.split()[1:]]
    assert report["params"] == board["params"] == {"tau": 2.0}
    assert cli[0] == 2  # seeds
    assert cli[1] == pytest.approx(70.0) == pytest.approx(report["val_bal_acc"]["mean"] * 100)
    assert cli[2] == pytest.approx(64.0) == pytest.approx(report["test_bal_acc"]["mean"] * 100) \
        == pytest.approx(board["test_bal_acc"] * 100)


def test_repeats_draw_their_own_subset_unless_told_not_to():
    exp = Experiment(repeats=3)
    assert exp.repeat_subsets  # the default: the subset is part of the noise, as the papers report
    cfgs = [trial_data(exp, k) for k in range(3)]
    assert [c.subset_seed for c in cfgs] == [0, 1, 2]
    hashes = {load_data(c).subset_hash for c in cfgs}
    assert len(hashes) == 3
    fixed = dataclasses.replace(exp, repeat_subsets=False)
    assert {trial_data(fixed, k).subset_seed for k in range(3)} == {0}


def test_digits_validation_size_is_the_real_one_or_refused():
    assert trial_data(Experiment(), 0).val_per_class == 15  # 0 = the dataset's default, made explicit
    assert len(load_data(DataConfig()).val) == 150
    with pytest.raises(LtrayError, match="room for at most 15"):
        validate(Experiment(data=DataConfig(val_per_class=20)))
    with pytest.raises(LtrayError, match="room for at most 15"):
        load_data(DataConfig(val_per_class=20))
    assert trial_data(Experiment(data=DataConfig(name="cifar10-lt")), 0).val_per_class == 20


def test_the_study_records_the_validation_size_it_uses():
    from ltray.sweep.cli import prepare

    exp, _, _ = prepare(["experiments/quickstart.py", "--results", "/tmp/ltray-unused"])
    assert exp.data.val_per_class == 15 and dataclasses.asdict(exp)["data"]["val_per_class"] == 15


def _epochs(tid, vals):
    hist = [{"epoch": i, "lr": 0.1, "train_loss": 1.0, "val_bal_acc": v, "val_many": v, "val_medium": v,
             "val_few": v, "images_per_s": 1.0, "epoch_s": 1.0} for i, v in enumerate(vals)]
    meta = R.TrialMeta(study="s", trial_id=tid, method="ce", params={}, seed=0, repeat=0, dataset="digits-lt",
                       rho=100.0, model="cnn-small", num_workers=1)
    return R.table("epochs", epoch_rows(meta, hist))


def test_a_trial_without_a_row_is_labelled_by_what_happened(tmp_path):
    from ltray.sweep.outcomes import label_unfinished

    study = str(tmp_path)
    for tid in ("asha", "killed", "full", "lost"):
        R.write_table(study, "epochs", tid, _epochs(tid, [0.2, 0.5, 0.4]))
    selected = {"val_bal_acc": 0.45, "val_many": 0.6, "val_medium": 0.4, "val_few": 0.3, "selected_epoch": 1,
                "epochs_done": 3, "progress": 0.25}
    outcomes.mark_ended(study, "asha", "complete", result=selected)
    outcomes.mark_ended(study, "killed", "error", error="ray.exceptions.ActorDiedError: The actor died unexpectedly")
    outcomes.mark_ended(study, "full", "error", error=f"ResultsFull: {FULL}: 3 MiB free")
    label_unfinished(Experiment(name="s", search=dataclasses.replace(Experiment().search, asha=True)), study)
    rows = {r["trial_id"]: r for r in R.load_study(study, ("trials",))["trials"].to_pylist()}
    assert rows["asha"]["status"] == "stopped" and "ASHA at 25%" in rows["asha"]["error"]
    assert rows["asha"]["val_bal_acc"] == 0.45 and rows["asha"]["best_epoch"] == 1  # what the searcher was told
    assert rows["killed"]["status"] == "interrupted" and "ActorDiedError" in rows["killed"]["error"]
    assert "ASHA" not in rows["killed"]["error"] and FULL in rows["full"]["error"]
    assert rows["lost"]["status"] == "interrupted" and "cut off with the sweep" in rows["lost"]["error"]
    assert rows["killed"]["val_bal_acc"] == 0.5 and rows["killed"]["best_epoch"] == 1  # best stored epoch


def test_a_duplicate_stops_waiting_for_an_original_that_died_without_a_row(tmp_path):
    from ltray.sweep.outcomes import wait_for_original

    study = str(tmp_path)
    outcomes.mark_ended(study, "orig", "error", error="ActorDiedError: killed")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="ended without a result .*ActorDiedError"):
        wait_for_original(study, "orig", timeout_s=60, poll_s=0.05)
    assert time.monotonic() - t0 < 5
    with pytest.raises(RuntimeError, match=r"waited 0.3 s \(search.duplicate_wait_s\)"):
        wait_for_original(study, "silent", timeout_s=0.3, poll_s=0.05)
    R.write_table(study, "trials", "done", R.table("trials", trial_row("done", "ce", {}, 0, 0.6, 0.5)))
    assert wait_for_original(study, "done", timeout_s=1, poll_s=0.05)["val_bal_acc"] == 0.6


def test_resume_forgets_the_end_of_a_trial_that_runs_again(tmp_path):
    study = str(tmp_path)
    outcomes.mark_ended(study, "a", "error", error="killed")
    R.write_table(study, "trials", "b", R.table("trials", trial_row("b", "ce", {}, 0, 0.6, 0.5)))
    outcomes.mark_ended(study, "b", "complete")
    outcomes.forget_ends(study, ["a"])
    assert set(outcomes.outcomes(study)) == {"b"}


def test_every_row_says_which_code_made_it(tmp_path):
    v = code_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+(\+git\.[0-9a-f]{12}(\.dirty)?)?;src=[0-9a-f]{12}", v), v
    row = trial_row("t", "ce", {}, 0, 0.5, 0.5)
    assert row["code_version"] == [v]
    assert R.table("trials", row).schema == R.SCHEMAS["trials"]


def test_a_trials_file_from_before_the_rename_reads_under_the_new_names(tmp_path):
    """Studies written before *_posthoc1 / *_taunorm1 became *_tau1 keep their values."""
    import pyarrow.parquet as pq

    row = trial_row("old", "ce", {}, 0, 0.5, 0.4)
    row.update(test_bal_acc_posthoc_tau1=[0.61], test_bal_acc_taunorm_tau1=[0.52])
    t = R.table("trials", row).drop_columns(["code_version"])
    old = t.rename_columns([R.RENAMED_FROM.get(c, c) for c in t.column_names])  # an older ltray's columns
    assert "test_bal_acc_posthoc1" in old.column_names
    (tmp_path / "trials").mkdir()
    pq.write_table(old, tmp_path / "trials" / "old.parquet")
    (row,) = R.load_study(str(tmp_path), ("trials",))["trials"].to_pylist()
    assert row["test_bal_acc_posthoc_tau1"] == 0.61 and row["test_bal_acc_taunorm_tau1"] == 0.52
    assert row["code_version"] is None  # a column it did not have reads as null


def test_calibration_columns_are_recomputed_from_the_stored_logits(tmp_path, digits):
    """test_ece / temperature / test_ece_ts of a trial row equal the closed forms on its logits."""
    from ltray.core.metrics import expected_calibration_error, per_class_precision
    from ltray.core.posthoc import fit_temperature
    from ltray.sweep.trial import LocalApi, TrialSpec, train_trial

    exp = Experiment(name="cal", methods=("ce",), train=Recipe(epochs=2, warmup_epochs=0, batch_size=64))
    train_trial(TrialSpec.build(exp, str(tmp_path), "t", "ce", {}, 0), LocalApi(), 0, 0)
    tabs = R.load_study(str(tmp_path))
    (row,) = tabs["trials"].to_pylist()
    logits = {s: [r for r in tabs["logits"].to_pylist() if r["split"] == s] for s in ("val", "test")}
    f = {s: np.array([r["logits"] for r in logits[s]], np.float64) for s in logits}
    y = {s: np.array([r["label"] for r in logits[s]]) for s in logits}
    t = fit_temperature(f["val"], y["val"])
    assert row["temperature"] == pytest.approx(t)
    assert row["test_ece"] == pytest.approx(expected_calibration_error(f["test"], y["test"]), abs=1e-6)
    assert row["test_ece_ts"] == pytest.approx(expected_calibration_error(f["test"] / t, y["test"]), abs=1e-6)
    precision = [r["precision"] for r in sorted(tabs["per_class"].to_pylist(), key=lambda r: r["class_id"])
                 if r["split"] == "test"]
    np.testing.assert_allclose(precision, per_class_precision(f["test"], y["test"], 10), equal_nan=True)


def test_asha_rungs_can_never_fall_on_a_trials_last_epoch():
    """grace 2 of 8 epochs puts an ASHA rung at progress 0.25 * 4 = 1.0: validation still
    accepts it, and no in-training report reaches 1.0, so no rung is judged on a trial that is
    writing its tables. grace == epochs (a rung only at the end) is refused."""
    from ltray.config import SearchConfig

    SearchConfig(asha=True, grace_epochs=2).validate(8, 1)
    with pytest.raises(LtrayError, match="grace_epochs"):
        SearchConfig(asha=True, grace_epochs=8).validate(8, 1)


def test_every_view_selects_on_the_studys_own_objective(tmp_path, capsys):
    """A study searching val_few: the configuration best on val_few (not val_bal_acc) is the one
    the CLI, the report and the dashboard show, as the searcher ranked it."""
    from ltray.sweep.cli import print_summary

    rows = [trial_row("a", "logit_adjusted", {"tau": 1.0}, 0, 0.90, 0.50),
            trial_row("b", "logit_adjusted", {"tau": 2.0}, 0, 0.70, 0.60)]
    rows[0].update(val_few=[0.20], objective=["val_few"])
    rows[1].update(val_few=[0.40], objective=["val_few"])
    for r in rows:
        R.write_table(str(tmp_path), "trials", r["trial_id"][0], R.table("trials", r))
    trials = R.load_study(str(tmp_path), ("trials",))["trials"]
    assert method_summary(trials)[0]["params"] == figures.best_per_method_info(trials)[0]["params"] == {"tau": 2.0}
    print_summary(str(tmp_path))
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("logit_adjusted"))
    assert float(line.split()[3]) == pytest.approx(60.0)  # b's test balanced accuracy
