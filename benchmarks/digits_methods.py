"""Every method on digits-lt (rho = 100, cnn-small, 30 epochs, seeds 0-2), the protocol the
README's method table reports: test balanced accuracy (%), mean +- 95% CI over seeds, with the
best epoch and post-hoc tau* chosen on validation.

    python benchmarks/digits_methods.py [--seeds 3]
"""

import argparse
import tempfile
import time


from ltray.data import DataConfig, load_data
from ltray.evaluate import trial_tables
from ltray.experiment import Experiment
from ltray.methods import get_method, logits_are_balanced
from ltray.report import mean_ci
from ltray.stages import backbone_state, get_pretrained, get_trained
from ltray.train import Recipe, fit

RECIPE = Recipe(epochs=30, batch_size=128, lr=0.1, warmup_epochs=5, weight_decay=5e-4)
ROWS = ["ce", "ce+posthoc", "ce+taunorm", "logit_adjusted", "balanced_softmax", "lade", "ldam_drw", "equalization",
        "mixup", "crt", "dive", "ce+ssp", "balanced_softmax+ssp"]


def run(name: str, seed: int, study: str) -> tuple[float, dict]:
    base, _, extra = name.partition("+")
    pre = "rotation" if extra == "ssp" else ""
    exp = Experiment(name="bench", train=RECIPE, pretrain=pre)
    data = load_data(DataConfig(name="digits-lt", rho=100, subset_seed=seed))
    m = get_method(base)
    kw = {}
    if m.teacher:
        kw["teacher"] = get_trained(study, exp, data, m.teacher, seed, "cpu", "bench")[0]
    if m.backbone_from:
        kw["init_backbone"] = backbone_state(get_trained(study, exp, data, m.backbone_from, seed, "cpu", "bench")[0])
        kw["freeze_backbone"] = True
    elif pre:
        kw["init_backbone"] = get_pretrained(study, exp, data, seed, "cpu", "bench")
    res = fit(data, m, None, "cnn-small", RECIPE, seed=seed, **kw)
    t = trial_tables(study="bench", trial_id=name, method=m, hp=m.hp(), seed=seed, repeat=0, exp=exp,
                     subset_hash=data.subset_hash, balanced=logits_are_balanced(m, m.recipe(RECIPE, m.hp())),
                     val_logits=res.val_logits, val_y=res.val_labels,
                     test_logits=res.test_logits, test_y=res.test_labels, train_counts=res.train_counts,
                     history=res.history, best_epoch=res.best_epoch, wall_s=0, taunorm=res.taunorm)["trials"]
    col = {"posthoc": "test_bal_acc_posthoc", "taunorm": "test_bal_acc_taunorm"}.get(extra, "test_bal_acc")
    return t[col][0], {k: t[k][0] for k in ("test_many", "test_medium", "test_few")}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as study:
        print(f"{'method':<22} {'test balanced acc (%)':>24}")
        for name in ROWS:
            vals = [run(name, s, study)[0] for s in range(a.seeds)]
            s = mean_ci(vals)
            print(f"{name:<22} {s['mean'] * 100:10.2f} +- {s['ci95'] * 100:5.2f}  (seeds: "
                  + ", ".join(f"{v * 100:.1f}" for v in vals) + ")", flush=True)
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
