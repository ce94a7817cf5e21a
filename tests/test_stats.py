"""The paired comparison and the protocol gap, against hand-computed cases and a brute force."""

import numpy as np
import pytest

from fixtures_study import trial_row
from ltray import results as R
from ltray.report import gap_table, paired_table
from ltray.stats import pair_counts, paired_difference

GROUPS = {"overall": np.array([True, True]), "head": np.array([True, False]), "none": np.array([False, False])}


def test_pair_counts_by_hand():
    a = np.array([1, 1, 0, 0, 1], bool)
    b = np.array([1, 0, 1, 0, 1], bool)
    y = np.array([0, 0, 0, 1, 1])
    # class 0: (a right, b right), (a right, b wrong), (a wrong, b right); class 1: both wrong, both right
    assert pair_counts(a, b, y, 2).tolist() == [[0, 1, 1, 1], [1, 0, 0, 1]]


def test_observed_difference_is_the_mean_over_seeds_of_balanced_accuracy_differences():
    # seed 0: class 0 a 3/4 vs b 1/4 (+0.5), class 1 a 1/2 vs b 1/2 (0) -> +0.25
    # seed 1: class 0 a 2/4 vs b 2/4 (0),    class 1 a 2/2 vs b 0/2 (+1) -> +0.5
    s0 = np.array([[1, 0, 2, 1], [1, 0, 0, 1]])  # class 0: a right 3, b right 1; class 1: a 1, b 1
    s1 = np.array([[1, 1, 1, 1], [0, 0, 2, 0]])  # class 0: a 2, b 2; class 1: a 2, b 0
    out = paired_difference(np.stack([s0, s1]), GROUPS, replicates=2000)
    assert out["overall"]["diff"] == pytest.approx(0.375)
    assert out["head"]["diff"] == pytest.approx(0.25)
    assert np.isnan(out["none"]["diff"])
    assert out["overall"]["lo"] <= 0.375 <= out["overall"]["hi"]


def test_identical_methods_and_a_sure_winner():
    same = np.zeros((3, 2, 4), int)
    same[..., 0], same[..., 3] = 5, 5  # both right on the same half of every class
    out = paired_difference(same, GROUPS, replicates=500)["overall"]
    assert out["diff"] == 0 and out["lo"] == 0 and out["hi"] == 0 and out["p"] == 1.0
    win = np.zeros((3, 2, 4), int)
    win[..., 2] = 10  # a right, b wrong on every image
    out = paired_difference(win, GROUPS, replicates=500)["overall"]
    assert out["diff"] == 1 and out["lo"] == 1 and out["hi"] == 1
    assert out["p"] == pytest.approx(2 / 501)  # the smallest p 500 replicates can give


def test_the_bootstrap_matches_resampling_seeds_and_images_by_brute_force():
    """The multinomial shortcut draws the same distribution as resampling seeds, then each
    class's test images with replacement, keeping each image's pair of predictions."""
    rng = np.random.default_rng(1)
    K, C, n = 4, 3, 30
    y = np.repeat(np.arange(C), n)
    a = [rng.random(C * n) < np.repeat([0.9, 0.6, 0.3], n) for _ in range(K)]
    b = [rng.random(C * n) < np.repeat([0.9, 0.5, 0.1], n) for _ in range(K)]
    counts = np.stack([pair_counts(a[k], b[k], y, C) for k in range(K)])
    mask = {"overall": np.ones(C, bool)}
    fast = paired_difference(counts, mask, replicates=4000, seed=2)["overall"]
    brute = []
    for _ in range(4000):
        diffs = []
        for k in rng.integers(0, K, K):
            per = []
            for c in range(C):
                idx = rng.choice(np.flatnonzero(y == c), n)
                per.append(a[k][idx].mean() - b[k][idx].mean())
            diffs.append(np.mean(per))
        brute.append(np.mean(diffs))
    lo, hi = np.percentile(brute, [2.5, 97.5])
    assert fast["lo"] == pytest.approx(lo, abs=0.012) and fast["hi"] == pytest.approx(hi, abs=0.012)


def _study(tmp_path, runs):
    """A study of real tables: per (trial, method, repeat) the test logits and an epoch curve."""
    counts = [200, 50, 10]
    for tid, method, k, test_logits, labels, curve, tau in runs:
        row = trial_row(tid, method, {}, k, 0.5, 0.5)
        right = np.argmax(test_logits, 1) == labels
        accs = [right[labels == c].mean() for c in range(3)]
        row.update(repeat=[k], subset_hash=[f"s{k}"], test_bal_acc=[float(np.mean(accs))], test_many=[accs[0]],
                   test_medium=[accs[1]], test_few=[accs[2]], tau_star=[tau], test_bal_acc_posthoc=[float(np.mean(accs))],
                   best_epoch=[0])
        R.write_table(str(tmp_path), "trials", tid, R.table("trials", row))
        key = {"study": ["fx"] * 3, "trial_id": [tid] * 3}
        R.write_table(str(tmp_path), "per_class", tid, R.table("per_class", {
            **key, "split": ["test"] * 3, "class_id": [0, 1, 2], "train_count": counts, "accuracy": accs,
            "accuracy_posthoc": accs, "precision": accs}))
        n = labels.size
        R.write_table(str(tmp_path), "logits", tid, R.table("logits", {
            "study": ["fx"] * n, "trial_id": [tid] * n, "split": ["test"] * n, "index": list(range(n)),
            "label": labels.tolist(), "logits": [np.asarray(x, np.float32) for x in test_logits]}))
        e = len(curve)
        R.write_table(str(tmp_path), "epochs", tid, R.table("epochs", {
            "study": ["fx"] * e, "trial_id": [tid] * e, "epoch": list(range(e)), "lr": [0.1] * e, "train_loss": [1.0] * e,
            "val_bal_acc": [0.5] * e, "val_many": [0.5] * e, "val_medium": [0.5] * e, "val_few": [0.5] * e,
            "images_per_s": [1.0] * e, "epoch_s": [1.0] * e, "test_bal_acc": [c[0] for c in curve],
            "test_many": [c[1] for c in curve], "test_medium": [c[2] for c in curve], "test_few": [c[3] for c in curve],
            "test_bal_acc_tau_oracle": [c[4] for c in curve]}))
    return R.load_study(str(tmp_path))


def test_paired_table_pairs_seed_k_with_seed_k_and_gap_shows_what_test_selection_flatters(tmp_path):
    labels = np.repeat([0, 1, 2], 4)
    right = np.eye(3)[labels] * 5  # logits that are right on every image
    wrong = np.eye(3)[(labels + 1) % 3] * 5  # wrong on every image
    half = np.where((np.arange(12) % 2 == 0)[:, None], right, wrong)  # right on half of each class
    flat = [(0.5, 0.5, 0.5, 0.5, 0.5)]
    tabs = _study(tmp_path, [
        ("c0", "ce", 0, half, labels, flat, 0.0), ("c1", "ce", 1, half, labels, flat, 0.0),
        # val chose epoch 0 (test 1.0); a test-selecting repository would pick the same epoch
        ("l0", "lade", 0, right, labels, [(1.0, 1, 1, 1, 1.0), (0.9, 1, 1, 0.7, 1.0)], 0.0),
        # val chose epoch 0 (test 0.6); test peaks at epoch 2 (0.8): optimism 0.2 points, few +0.4
        ("l1", "lade", 1, np.where((np.arange(12) % 5 < 3)[:, None], right, wrong), labels,
         [(0.6, 0.6, 0.6, 0.6, 0.65), (0.7, 0.7, 0.7, 0.7, 0.7), (0.8, 0.6, 0.8, 1.0, 0.85)], 0.0),
    ])
    rows = {r["row"]: r for r in paired_table(tabs, "ce", replicates=1000)}
    assert "vs_baseline" not in rows["ce"] and rows["ce"]["seeds"] == 2
    assert rows["ce"]["bal_acc"]["mean"] == pytest.approx(0.5)
    lade = rows["lade"]["vs_baseline"]["bal_acc"]
    # seed 0: 1.0 - 0.5; seed 1: the logits right where index % 5 < 3, per class, minus 0.5
    y, r1 = labels, np.arange(12) % 5 < 3
    seed1 = np.mean([r1[y == c].mean() for c in range(3)]) - 0.5
    assert lade["diff"] == pytest.approx((0.5 + seed1) / 2)
    gap = {r["row"]: r for r in gap_table(tabs, "ce")}
    on_val_1 = np.mean([r1[y == c].mean() for c in range(3)])  # what validation chose for seed 1, on test
    lade_gap = gap["lade"]["bal_acc"]["optimism"]
    assert lade_gap["n"] == 2 and lade_gap["mean"] == pytest.approx((0.0 + (0.8 - on_val_1)) / 2)
    assert gap["lade"]["few"]["optimism"]["mean"] == pytest.approx((0.0 + (1.0 - r1[y == 2].mean())) / 2)
    # post-hoc: epoch and tau on test = the best per-epoch oracle; ce's is flat at 0.5 = its val-chosen figure
    assert gap["ce + post-hoc LA"]["bal_acc"]["optimism"]["mean"] == pytest.approx(0.0)
    assert all(r["bal_acc"]["optimism"]["mean"] >= 0 for r in gap.values())  # test selection can only flatter


def test_the_dashboard_and_the_cli_show_the_reports_paired_numbers(tmp_path, capsys):
    """One definition: the dashboard's paired rows and gap bars and the CLI summary print the
    numbers ltray.report computes."""
    from dashboard import figures as F
    from ltray.cli import print_summary
    from ltray.report import paired_lines

    labels = np.repeat([0, 1, 2], 4)
    right, wrong = np.eye(3)[labels] * 5, np.eye(3)[(labels + 1) % 3] * 5
    half = np.where((np.arange(12) % 2 == 0)[:, None], right, wrong)
    curve = [(0.5, 0.5, 0.5, 0.5, 0.6), (0.7, 0.8, 0.6, 0.4, 0.75)]
    tabs = _study(tmp_path, [("c0", "ce", 0, half, labels, curve, 0.0), ("c1", "ce", 1, half, labels, curve, 0.0),
                             ("b0", "balanced_softmax", 0, right, labels, curve, 0.0),
                             ("b1", "balanced_softmax", 1, half, labels, curve, 0.0)])
    report = {r["row"]: r for r in paired_table(tabs)}
    board = {r["row"]: r for r in F.paired_rows(tabs)}
    d = report["balanced_softmax"]["vs_baseline"]["bal_acc"]
    assert board["balanced_softmax"]["vs_baseline"] == f"{d['diff'] * 100:+.2f} [{d['lo'] * 100:+.2f}, {d['hi'] * 100:+.2f}]"
    assert board["balanced_softmax"]["p"] == round(d["p"], 4) and board["ce"]["verdict"] == "baseline"
    gap = {r["row"]: r for r in gap_table(tabs)}
    info = F.gap_info(tabs)
    k = info["rows"].index("balanced_softmax")
    assert info["optimism"]["bal_acc"][k] == pytest.approx(gap["balanced_softmax"]["bal_acc"]["optimism"]["mean"] * 100)
    print_summary(str(tmp_path))
    out = capsys.readouterr().out
    for line in paired_lines(tabs):
        assert line in out
    assert "protocol gap" in out
