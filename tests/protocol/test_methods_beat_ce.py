"""What the long-tail papers claim, shown on digits-lt at rho = 100 the way ltray claims anything:
on several seeds (seed k = subset k and initial weights k for every method, a paired design),
as a mean paired difference whose 95% t-interval excludes zero.

Measured 2026-11-25 on these 5 seeds (test balanced accuracy, paired difference, mean +- 95% CI):
BSCE - CE +18.1 +- 3.5 points, LADE - CE +20.4 +- 5.7, CE post-hoc LA - CE +11.9 +- 7.1; PC
with the true prior on CE's backward-50 set +20.6 +- 3.6. Three seeds did not clear zero for
post-hoc LA (t quantile 4.30 vs 2.78), hence five. PC on BSCE / LADE gains on average but not
significantly on the ~106 images of one shifted set (forward-50: +1.5 +- 3.5 and +3.0 +- 3.6),
so that test asserts only the direction of the mean."""

import numpy as np
import pytest

from ltray import results as R
from ltray.datasets import DataConfig
from ltray.config import Experiment, trial_data
from ltray.core.stats import mean_ci
from ltray.report import la_table
from ltray.config import Recipe
from ltray.sweep.trial import LocalApi, TrialSpec, train_trial

pytestmark = pytest.mark.slow
RECIPE = Recipe(epochs=30, batch_size=128, lr=0.1, warmup_epochs=5, weight_decay=5e-4)
EXP = Experiment(name="digits", data=DataConfig(name="digits-lt", rho=100), train=RECIPE)
SEEDS = (0, 1, 2, 3, 4)
METHODS = ("ce", "balanced_softmax", "logit_adjusted", "lade", "ldam_drw", "equalization")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Every method on every seed through ltray's own trial body, into one real study folder."""
    folder = str(tmp_path_factory.mktemp("digits"))
    for name in METHODS:
        for seed in SEEDS:
            train_trial(TrialSpec.build(EXP, folder, f"{name}-{seed}", name, {}, repeat=seed), LocalApi(), 0, 0)
    return R.load_study(folder)


def _col(study, method, col="test_bal_acc"):
    rows = {r["repeat"]: r[col] for r in study["trials"].to_pylist() if r["method"] == method}
    return np.array([rows[s] for s in SEEDS])


def _shift(study, method, shift, adjustment, col="accuracy"):
    out = {}
    for r in study["shifts"].to_pylist():
        if r["trial_id"].startswith(method + "-") and r["shift"] == shift and r["adjustment"] == adjustment:
            out[int(r["trial_id"].rsplit("-", 1)[1])] = r[col]
    return np.array([out[s] for s in SEEDS])


def _clearly_above(a, b):
    """Mean paired difference a - b with its 95% t-interval entirely above zero."""
    d = mean_ci(a - b)
    return d["mean"] - d["ci95"] > 0, d


def test_each_seed_used_its_own_subset_and_every_method_the_same_ones(study):
    hashes = {(r["method"], r["repeat"]): r["subset_hash"] for r in study["trials"].to_pylist()}
    for seed in SEEDS:
        assert len({hashes[(m, seed)] for m in METHODS}) == 1
    assert len({hashes[("ce", s)] for s in SEEDS}) == len(SEEDS)


@pytest.mark.parametrize("name", ["balanced_softmax", "logit_adjusted", "lade"])
def test_long_tail_losses_beat_ce_on_paired_seeds(study, name):
    ok, d = _clearly_above(_col(study, name), _col(study, "ce"))
    assert ok, d


def test_posthoc_la_beats_ce_on_paired_seeds(study):
    ok, d = _clearly_above(_col(study, "ce", "test_bal_acc_posthoc"), _col(study, "ce"))
    assert ok, d  # tau* from validation


@pytest.mark.parametrize("name", ["balanced_softmax", "lade"])
def test_pc_with_the_true_prior_helps_on_average_on_strong_shifts(study, name):
    for shift in ("forward50", "backward50"):
        gain = _shift(study, name, shift, "pc_true") - _shift(study, name, shift, "none")
        assert gain.mean() > 0, (name, shift, gain)


def test_pc_on_ce(study):
    # CE's logits already carry a training prior close to forward-50's: PC can only tie there,
    # and must win where the shift runs against training (backward-50)
    assert _shift(study, "ce", "forward50", "pc_true").mean() >= _shift(study, "ce", "forward50", "none").mean() - 0.01
    ok, d = _clearly_above(_shift(study, "ce", "backward50", "pc_true"), _shift(study, "ce", "backward50", "none"))
    assert ok, d


def test_em_moves_the_prior_most_of_the_way_to_the_forward50_truth(study):
    """BSCE's logits assume a uniform prior; forward-50's true prior is 0.93 away from it in L1.
    EM's estimate from unlabelled predictions is within half of that on every seed (measured
    0.08-0.26)."""
    from ltray.core.longtail import shifted_test_indices
    from ltray.datasets import load_data

    for seed, l1 in zip(SEEDS, _shift(study, "balanced_softmax", "forward50", "pc_em", "prior_l1")):
        d = load_data(trial_data(EXP, seed))
        y = d.test.y.numpy()
        idx = shifted_test_indices(y, d.train_counts, 50, "forward")
        true = np.bincount(y[idx], minlength=d.num_classes) / idx.size
        assert l1 < 0.5 * np.abs(true - 1 / d.num_classes).sum(), (seed, l1)


def test_la_table_rows_from_these_trials(study):
    rows = {r["row"]: r for r in la_table(study["trials"])}
    assert len(rows) == 8 and rows["ERM"]["n"] == len(SEEDS)
    assert rows["ERM"]["mean"] == pytest.approx(1 - _col(study, "ce").mean())
    assert rows["Logit adjustment loss"]["mean"] < rows["ERM"]["mean"]
    assert rows["Logit adjustment post-hoc (tau = tau*)"]["mean"] < rows["ERM"]["mean"]
