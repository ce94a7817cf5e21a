"""A small study in the real schemas, written as real Parquet files (no training)."""

import numpy as np
import optuna

from ltray import results as R
from ltray.core.longtail import shift_names
from ltray.results.rows import SHIFT_ADJUSTMENTS, empty_row

COUNTS = [120, 60, 30, 15, 8]


def trial_row(tid, method, params, seed, val, test, status="completed"):
    meta = R.TrialMeta(study="fx", trial_id=tid, method=method, params=params, seed=seed, repeat=seed,
                       dataset="digits-lt", rho=100.0, model="cnn-small", num_workers=1, subset_hash="abc")
    row = empty_row(meta, status=status, error="", epochs_run=3, wall_s=1.0)
    row.update(best_epoch=[2], val_bal_acc=[val], test_bal_acc=[test], test_many=[test + 0.2], test_medium=[test],
               test_few=[test - 0.2], val_many=[val], val_medium=[val], val_few=[val], tau_star=[0.8],
               test_bal_acc_posthoc=[test + 0.01])
    return row


TRIALS = [  # (trial_id, method, params, seed, val, test)
    ("t1", "ce", {}, 0, 0.50, 0.48), ("t2", "ce", {}, 1, 0.52, 0.50), ("t3", "ce", {}, 2, 0.54, 0.52),
    ("t4", "logit_adjusted", {"tau": 1.0}, 0, 0.60, 0.58), ("t5", "logit_adjusted", {"tau": 2.0}, 0, 0.55, 0.62),
    ("t6", "dive", {"tau": 3.0, "power": 0.5, "a": 0.5}, 0, 0.61, 0.60),
]


def write_study(root, name="fx", with_optuna=True):
    study = root / name
    asked: dict[str, list] = {}  # per method, its configurations in the order the search asked for them
    for tid, method, params, seed, val, test in TRIALS:
        row = trial_row(tid, method, params, seed, val, test)
        order = asked.setdefault(method, [])
        order += [params] if params not in order else []
        row.update(config_index=[order.index(params)])
        R.write_table(str(study), "trials", tid, R.table("trials", row))
        C = len(COUNTS)
        pc = {"study": ["fx"] * 2 * C, "trial_id": [tid] * 2 * C, "split": ["val"] * C + ["test"] * C,
              "class_id": list(range(C)) * 2, "train_count": COUNTS * 2,
              "accuracy": list(np.linspace(0.9, 0.1, C)) * 2, "accuracy_posthoc": list(np.linspace(0.8, 0.4, C)) * 2,
              "precision": list(np.linspace(0.5, 0.95, C)) * 2}
        R.write_table(str(study), "per_class", tid, R.table("per_class", pc))
        names = shift_names()
        rows = [(n, r, d, a) for n, r, d in names for a in SHIFT_ADJUSTMENTS]
        sh = {"study": ["fx"] * len(rows), "trial_id": [tid] * len(rows), "shift": [r[0] for r in rows],
              "ratio": [r[1] for r in rows], "direction": [r[2] for r in rows], "size": [100] * len(rows),
              "adjustment": [r[3] for r in rows],
              "accuracy": [test + (0.05 if r[3] == "pc_true" else 0.0) + 0.01 * i for i, r in enumerate(rows)],
              "prior_l1": [0.0] * len(rows)}
        R.write_table(str(study), "shifts", tid, R.table("shifts", sh))
        n = 10  # test images: label i % 5; the first round(10 * test) predicted right, the rest wrong
        labels = [i % 5 for i in range(n)]
        pred = [y if i < round(n * test) else (y + 1) % 5 for i, y in enumerate(labels)]
        R.write_table(str(study), "logits", tid, R.table("logits", {
            "study": ["fx"] * n, "trial_id": [tid] * n, "split": ["test"] * n, "index": list(range(n)), "label": labels,
            "logits": [np.eye(5, dtype=np.float32)[p] for p in pred]}))
        tc = {"study": ["fx"] * 4, "trial_id": [tid] * 4, "split": ["val", "val", "test", "test"],
              "tau_lo": [0.0, 0.8, 0.0, 1.1], "tau_hi": [0.8, 3.0, 1.1, 3.0], "bal_acc": [val - 0.05, val, test - 0.04, test]}
        R.write_table(str(study), "tau_curve", tid, R.table("tau_curve", tc))
    ve = {"study": ["fx"] * 5, "trial_id": ["t6"] * 5, "stage": ["s"] * 5, "class_id": list(range(5)),
          "train_count": COUNTS, "raw": [100.0, 50, 30, 25, 28], "tempered": [80.0, 60, 50, 30, 13],
          "power_normalised": [60.0, 55, 50, 45, 23]}
    R.write_table(str(study), "virtual", "t6", R.table("virtual", ve))
    (study / "experiment.json").write_text("{}")
    if with_optuna:
        st = optuna.create_study(storage=f"sqlite:///{study / 'optuna.db'}", study_name="fx", direction="maximize",
                                 sampler=optuna.samplers.RandomSampler(seed=0))
        st.optimize(lambda t: t.suggest_float("logit_adjusted.tau", 0.25, 2.5) * 0.1 + t.suggest_float("x", 0, 1),
                    n_trials=6)
    return study
