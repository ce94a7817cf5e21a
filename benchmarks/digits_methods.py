"""Every method on digits-lt (rho = 100, cnn-small, 30 epochs, seeds 0-2), the protocol the
README's method table reports: test balanced accuracy (%), mean +- 95% CI over seeds, with the
best epoch and post-hoc tau* chosen on validation.

    python benchmarks/digits_methods.py [--seeds 3]
"""

import argparse
import dataclasses
import tempfile
import time

from ltray import results as R
from ltray.config import DataConfig, Experiment, Recipe
from ltray.core.stats import mean_ci
from ltray.sweep.trial import LocalApi, TrialSpec, train_trial

RECIPE = Recipe(epochs=30, batch_size=128, lr=0.1, warmup_epochs=5, weight_decay=5e-4)
ROWS = ["ce", "ce+posthoc", "ce+taunorm", "logit_adjusted", "balanced_softmax", "lade", "ldam_drw", "equalization",
        "mixup", "crt", "dive", "ce+ssp", "balanced_softmax+ssp", "focal", "cb_ce", "cb_focal", "reweight", "drs",
        "bsce_cbs", "lws", "ce_wd", "wb", "remix", "ride", "sade", "balpoe"]
EXP = Experiment(name="bench", data=DataConfig(name="digits-lt", rho=100), train=RECIPE)


def run(name: str, seed: int, study: str) -> dict:
    """One trial through ltray's own trial body (no Ray): seed k uses subset k (repeat_subsets)."""
    base, _, extra = name.partition("+")
    exp = dataclasses.replace(EXP, pretrain="rotation" if extra == "ssp" else "")
    trial_id = f"{name}-{seed}"
    spec = TrialSpec.build(exp, study, trial_id, base, {}, repeat=seed)
    train_trial(spec, LocalApi(), 0, 0)
    row = [r for r in R.load_study(study, ("trials",))["trials"].to_pylist() if r["trial_id"] == trial_id][0]
    col = {"posthoc": "test_bal_acc_posthoc", "taunorm": "test_bal_acc_taunorm"}.get(extra, "test_bal_acc")
    return row[col]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rows", nargs="+", default=ROWS, choices=ROWS, metavar="ROW", help="rows to run (default: all)")
    a = p.parse_args()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as study:
        print(f"{'method':<22} {'test balanced acc (%)':>24}")
        for name in a.rows:
            vals = [run(name, s, study) for s in range(a.seeds)]
            s = mean_ci(vals)
            print(f"{name:<22} {s['mean'] * 100:10.2f} +- {s['ci95'] * 100:5.2f}  (seeds: "
                  + ", ".join(f"{v * 100:.1f}" for v in vals) + ")", flush=True)
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
