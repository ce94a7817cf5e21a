"""Train one method from the command line, without Ray, and print per-shot accuracy::

    python -m ltray.train --method balanced_softmax --epochs 30                  # digits-lt, cnn-small
    python -m ltray.train --experiment experiments/quickstart.py --method lade   # a study's data, model and recipe
    python -m ltray.train --method ce --set train.weight_decay=2e-4 train.lr=0.05  # any field, as the sweep's --set

Without ``--experiment`` it starts from ``Experiment()``'s recipe and digits-lt; with one, from
that study's (what its trials train with, so the numbers compare). The flags and ``--set`` then
change it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from ltray.config import Experiment, ModelConfig, Recipe, apply_overrides, load_experiment, resolve_trial, validate
from ltray.core.metrics import FEW_SHOT, MANY_SHOT, SHOT_GROUPS, shot_masks
from ltray.datasets import dataset_names, load_data
from ltray.errors import LtrayError
from ltray.methods import get_method, method_names
from ltray.models import MODELS
from ltray.train.fit import FitResult, fit
from ltray.train.reporting import Reporting


def format_results(res: FitResult) -> str:
    """A small text table of validation/test balanced and per-shot accuracy."""
    n = res.train_counts
    lines = [f"train counts: {n.sum()} images, {n.max()} (head) .. {n.min()} (tail); best epoch {res.best_epoch} (0-based, chosen on validation)",
             f"{'split':<6} {'overall':>8} {'many':>8} {'medium':>8} {'few':>8}"]
    groups = {g: int(mask.sum()) for g, mask in shot_masks(n).items()}
    for split in ("val", "test"):
        vals = [res.metrics[f"{split}_{k}"] for k in ("bal_acc", *SHOT_GROUPS)]
        lines.append(f"{split:<6} " + " ".join(f"{v * 100:8.2f}" if v == v else f"{'-':>8}" for v in vals))
    lines.append(f"classes per group: many {groups['many']}, medium {groups['medium']}, few {groups['few']} "
                 f"(many: > {MANY_SHOT} training images, few: < {FEW_SHOT})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltray.train", description="Train one method and print per-shot accuracy.")
    p.add_argument("--experiment", help="start from this experiment file's data, model and recipe")
    p.add_argument("--data", help=f"dataset: {', '.join(dataset_names())} (default: digits-lt)")
    p.add_argument("--root", help="data folder")
    p.add_argument("--rho", type=float, help="imbalance ratio n_max / n_min (>= 1)")
    p.add_argument("--method", default="balanced_softmax", help=f"one of: {', '.join(method_names())}")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="method hyperparameter, repeatable")
    p.add_argument("--model", help=f"one of: {', '.join(MODELS)} (default: cnn-small)")
    p.add_argument("--epochs", type=int, help="train.epochs")
    p.add_argument("--batch-size", type=int, help="train.batch_size")
    p.add_argument("--lr", type=float, help="train.lr")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batch order and data subset")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="any experiment field by its dotted path, e.g. train.weight_decay=2e-4 (python -m ltray.sweep "
                        "--help lists them)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    try:
        hp = _knobs(a.hp)
        method = get_method(a.method)
        method.hp(hp)
        exp = _experiment(a)
        validate(dataclasses.replace(exp, methods=(a.method,)))
        plan = resolve_trial(exp, a.method, hp)
        data = load_data(plan.data)
        print(f"{data.name}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test images, "
              f"{data.num_classes} classes, subset {data.subset_hash}; method {method.name} {hp or ''}; "
              f"{plan.recipe.epochs} epochs, lr {plan.recipe.lr:g}, weight decay {plan.recipe.weight_decay:g}")
        res = fit(data, method, plan.hp, exp.model.name, plan.recipe, seed=plan.seed, device=a.device,
                  reporting=Reporting(log=print))
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_results(res))
    return 0


def _knobs(items: list[str]) -> dict:
    hp = {}
    for kv in items:
        k, sep, v = kv.partition("=")
        if not sep:
            raise LtrayError(f"--hp wants KEY=VALUE, got {kv!r}")
        try:
            hp[k] = float(v)
        except ValueError:
            raise LtrayError(f"--hp {k}: {v!r} is not a number") from None
    return hp


def _experiment(a) -> Experiment:
    """The experiment file's (or ``Experiment()`` on digits-lt), then the flags, then --set."""
    exp = load_experiment(a.experiment) if a.experiment else Experiment(model=ModelConfig("cnn-small"),
                                                                       train=Recipe(epochs=30, warmup_epochs=5))
    flags = {"data.name": a.data, "data.root": a.root, "data.rho": a.rho, "model.name": a.model,
             "train.epochs": a.epochs, "train.batch_size": a.batch_size, "train.lr": a.lr}
    sets = [f"{k}={v}" for k, v in flags.items() if v is not None] + [f"seed={a.seed}", f"data.subset_seed={a.seed}"]
    return apply_overrides(exp, sets + list(a.set))

if __name__ == "__main__":
    sys.exit(main())
