"""Train one method from the command line, without Ray, and print per-shot accuracy::

    python -m ltray.train --data digits-lt --method balanced_softmax --epochs 30
"""

from __future__ import annotations

import argparse
import sys

import torch

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, resolve_trial
from ltray.core.metrics import FEW_SHOT, MANY_SHOT, SHOT_GROUPS, shot_masks
from ltray.datasets import load_data
from ltray.errors import LtrayError
from ltray.methods import get_method, method_names
from ltray.models import MODELS
from ltray.train.fit import FitResult, fit
from ltray.train.reporting import Reporting


def format_results(res: FitResult) -> str:
    """A small text table of validation/test balanced and per-shot accuracy."""
    n = res.train_counts
    lines = [f"train counts: {n.sum()} images, {n.max()} (head) .. {n.min()} (tail); best epoch {res.best_epoch + 1} (on validation)",
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
    p.add_argument("--data", default="digits-lt", help="dataset name (digits-lt, cifar10-lt, cifar100-lt, gaussian-lt)")
    p.add_argument("--root", default="data", help="data folder")
    p.add_argument("--rho", type=float, default=100.0, help="imbalance ratio n_max / n_min (>= 1)")
    p.add_argument("--method", default="balanced_softmax", help=f"one of: {', '.join(method_names())}")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="method hyperparameter, repeatable")
    p.add_argument("--model", default="cnn-small", help=f"one of: {', '.join(MODELS)}")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    try:
        hp = {}
        for kv in a.hp:
            k, sep, v = kv.partition("=")
            if not sep:
                raise LtrayError(f"--hp wants KEY=VALUE, got {kv!r}")
            try:
                hp[k] = float(v)
            except ValueError:
                raise LtrayError(f"--hp {k}: {v!r} is not a number") from None
        method = get_method(a.method)
        method.hp(hp)
        if a.model not in MODELS:
            raise LtrayError(f"unknown model {a.model!r}; choose one of {', '.join(MODELS)}")
        recipe = Recipe(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, warmup_epochs=min(5, a.epochs // 4),
                        weight_decay=5e-4)
        recipe.validate()
        exp = Experiment(data=DataConfig(name=a.data, root=a.root, rho=a.rho, subset_seed=a.seed),
                         model=ModelConfig(a.model), train=recipe, seed=a.seed)
        plan = resolve_trial(exp, a.method, hp)
        data = load_data(plan.data)
        print(f"{data.name}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test images, "
              f"{data.num_classes} classes, subset {data.subset_hash}; method {method.name} {hp or ''}")
        res = fit(data, method, plan.hp, a.model, plan.recipe, seed=plan.seed, device=a.device,
                  reporting=Reporting(log=print))
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_results(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
