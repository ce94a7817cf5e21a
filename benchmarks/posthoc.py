"""Post-hoc and dashboard speed: the exact tau curve against a 1000-point grid, and every
dashboard figure function on a large study (1,000 trials x 100 classes x 11 shifts).

    python benchmarks/posthoc.py [--trials 1000]
"""

import argparse
import time

import numpy as np
import pyarrow as pa

import tau_curve as tau_bench
from dashboard import figures
from ltray import results as R
from ltray.core.longtail import shift_names
from ltray.results.rows import SHIFT_ADJUSTMENTS


def big_study(n_trials: int, C: int = 100, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    methods = np.array(["ce", "balanced_softmax", "logit_adjusted", "lade", "ldam_drw"])
    ids = np.array([f"t{i:05d}" for i in range(n_trials)])
    m = methods[np.arange(n_trials) % methods.size]
    nan = np.full(n_trials, np.nan)
    cols = {f.name: None for f in R.SCHEMAS["trials"]}
    acc = rng.uniform(0.3, 0.8, n_trials)
    cols.update(study=["big"] * n_trials, trial_id=ids, method=m,
                params=[[("tau", float(t))] for t in rng.uniform(0, 2, n_trials)], seed=np.arange(n_trials) % 3,
                repeat=np.arange(n_trials) % 3, dataset=["cifar100-lt"] * n_trials, rho=np.full(n_trials, 100.0),
                subset_hash=["h"] * n_trials, model=["resnet32"] * n_trials, num_workers=np.ones(n_trials, int),
                status=["completed"] * n_trials, error=[""] * n_trials, best_epoch=np.zeros(n_trials, int),
                epochs_run=np.full(n_trials, 200), val_bal_acc=acc, test_bal_acc=acc - 0.01, stage=[""] * n_trials,
                resumed_at=np.zeros(n_trials, int), finished_at=[""] * n_trials, versions=["{}"] * n_trials)
    for k, v in list(cols.items()):
        if v is None:
            cols[k] = acc if k.startswith(("val_", "test_")) else nan
    trials = pa.table({k: pa.array(cols[k], type=f.type) for k, f in zip(cols, R.SCHEMAS["trials"])},
                      schema=R.SCHEMAS["trials"])
    n = n_trials * 2 * C
    per_class = pa.table({"study": pa.array(["big"] * n), "trial_id": pa.array(np.repeat(ids, 2 * C)),
                          "split": pa.array(np.tile(np.repeat(["val", "test"], C), n_trials)),
                          "class_id": pa.array(np.tile(np.arange(C), 2 * n_trials)),
                          "train_count": pa.array(np.tile(np.arange(C, 0, -1) * 5, 2 * n_trials)),
                          "accuracy": pa.array(rng.uniform(0, 1, n)), "accuracy_posthoc": pa.array(rng.uniform(0, 1, n))},
                         schema=R.SCHEMAS["per_class"])
    names = shift_names()
    k = len(names) * len(SHIFT_ADJUSTMENTS)
    n = n_trials * k
    shifts = pa.table({"study": pa.array(["big"] * n), "trial_id": pa.array(np.repeat(ids, k)),
                       "shift": pa.array(np.tile(np.repeat([x[0] for x in names], len(SHIFT_ADJUSTMENTS)), n_trials)),
                       "ratio": pa.array(np.tile(np.repeat([x[1] for x in names], len(SHIFT_ADJUSTMENTS)), n_trials)),
                       "direction": pa.array(np.tile(np.repeat([x[2] for x in names], len(SHIFT_ADJUSTMENTS)), n_trials)),
                       "size": pa.array(np.full(n, 1000)),
                       "adjustment": pa.array(np.tile(SHIFT_ADJUSTMENTS, n_trials * len(names))),
                       "accuracy": pa.array(rng.uniform(0, 1, n)), "prior_l1": pa.array(np.zeros(n))},
                      schema=R.SCHEMAS["shifts"])
    steps = 500
    n = n_trials * 2 * steps
    lo = np.tile(np.linspace(0, 3, steps, endpoint=False), 2 * n_trials)
    curves = pa.table({"study": pa.array(["big"] * n), "trial_id": pa.array(np.repeat(ids, 2 * steps)),
                       "split": pa.array(np.tile(np.repeat(["val", "test"], steps), n_trials)),
                       "tau_lo": pa.array(lo), "tau_hi": pa.array(lo + 3 / steps), "bal_acc": pa.array(rng.uniform(0, 1, n))},
                      schema=R.SCHEMAS["tau_curve"])
    return {"trials": trials, "per_class": per_class, "shifts": shifts, "tau_curve": curves}


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=1000)
    a = p.parse_args()
    tau_bench.main()
    t = big_study(a.trials)
    print(f"\ndashboard figures on {a.trials} trials x 100 classes x 11 shifts "
          f"({t['per_class'].num_rows:,} per-class rows, {t['shifts'].num_rows:,} shift rows):")
    ids = t["trials"].column("trial_id").to_pylist()
    jobs = {
        "trials table rows": lambda: figures.trials_rows(t["trials"]),
        "per-shot bars": lambda: figures.shot_bars(t["trials"]),
        "shifted test sets": lambda: figures.shifts(t["shifts"], t["trials"]),
        "per-class (2 trials)": lambda: figures.per_class(t["per_class"], t["trials"], ids[:2]),
        "tau curve (1 trial)": lambda: figures.tau_curve(t["tau_curve"], t["trials"], ids[0]),
    }
    worst = 0.0
    for name, fn in jobs.items():
        s = min(timed(fn) for _ in range(3))
        worst = max(worst, s)
        print(f"  {name:<22} {s * 1000:8.1f} ms")
    print(f"  slowest: {worst:.2f} s (goal < 1 s each)")


if __name__ == "__main__":
    main()
