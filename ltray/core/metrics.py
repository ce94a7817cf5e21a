"""Evaluation metrics: per-class, balanced and per-shot accuracy; virtual example distribution."""

from __future__ import annotations

import numpy as np
import torch

from ltray.errors import LtrayError

MANY_SHOT = 100  # many-shot: more than 100 training images (BALMS shot_acc)
FEW_SHOT = 20  # few-shot: fewer than 20 training images
SHOT_GROUPS = ("many", "medium", "few")  # the shot groups, in the order every view lists them
OVERALL = "bal_acc"  # the balanced accuracy over all classes, shown beside the shot groups
SHOT_RANGES = {"many": f"> {MANY_SHOT}", "medium": f"{FEW_SHOT}-{MANY_SHOT}", "few": f"< {FEW_SHOT}"}
"""Each group's training images per class, as text for labels and notes."""

# A trial's validation result: the selected (best on val_bal_acc) epoch's values. The searcher,
# ASHA, the trials table, the CLI, the report and the dashboard all mean these numbers.
VAL_METRICS = ("val_bal_acc", "val_many", "val_medium", "val_few")


def _preds(logits_or_preds) -> np.ndarray:
    a = logits_or_preds.detach().cpu().numpy() if isinstance(logits_or_preds, torch.Tensor) else np.asarray(logits_or_preds)
    return a.argmax(1) if a.ndim == 2 else a


def per_class_accuracy(logits_or_preds, y, num_classes: int) -> np.ndarray:
    """Recall of each class: logits (N, C) or predictions (N,), labels (N,) -> (C,) float64.

    A class absent from ``y`` gets NaN.
    """
    p = _preds(logits_or_preds).astype(np.int64)
    y = (y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).astype(np.int64)
    if p.shape != y.shape:
        raise LtrayError(f"predictions {p.shape} and labels {y.shape} must have the same length")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise LtrayError(f"labels must lie in [0, {num_classes})")
    total = np.bincount(y, minlength=num_classes).astype(np.float64)
    hit = np.bincount(y[p == y], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hit / total, np.nan)


def per_class_precision(logits_or_preds, y, num_classes: int) -> np.ndarray:
    """Precision of each class: of the images predicted as c, the fraction that are c; (C,)
    float64, NaN for a class never predicted. Long-tailed models trade head precision for
    tail recall, which recall alone hides."""
    p = _preds(logits_or_preds).astype(np.int64)
    y = (y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).astype(np.int64)
    if p.shape != y.shape:
        raise LtrayError(f"predictions {p.shape} and labels {y.shape} must have the same length")
    predicted = np.bincount(p, minlength=num_classes).astype(np.float64)
    hit = np.bincount(p[p == y], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(predicted > 0, hit / predicted, np.nan)


def expected_calibration_error(logits, y, bins: int = 15) -> float:
    """ECE (Guo et al. ICML 2017): images binned by confidence (the top softmax probability) into
    ``bins`` equal-width bins of (0, 1]; the image-weighted mean of |accuracy - confidence| per bin.
    logits (N, C), y (N,)."""
    f = torch.as_tensor(logits, dtype=torch.float64)
    y = np.asarray(y)
    if f.ndim != 2 or f.shape[0] != y.size:
        raise LtrayError(f"ECE wants logits (N, C) and labels (N,), got {tuple(f.shape)} and {y.shape}")
    if y.size == 0:
        return float("nan")
    conf, pred = torch.softmax(f, 1).max(1)
    conf, right = conf.numpy(), pred.numpy() == y
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)  # bin b holds (b/bins, (b+1)/bins]
    n = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, right.astype(np.float64), bins) - np.bincount(which, conf, bins))
    return float(gap.sum() / y.size) if n.sum() else float("nan")


def balanced_accuracy(logits_or_preds, y, num_classes: int | None = None) -> float:
    """Mean per-class recall over the classes present in ``y`` (= top-1 on a balanced test set)."""
    if num_classes is None:
        a = _preds(logits_or_preds)
        num_classes = int(max(np.max(y), a.max() if a.size else 0)) + 1
    return float(np.nanmean(per_class_accuracy(logits_or_preds, y, num_classes)))


def shot_masks(train_counts, many: int = MANY_SHOT, few: int = FEW_SHOT) -> dict[str, np.ndarray]:
    """Boolean masks (C,) of the classes in each shot group: many (n > 100), medium, few (n < 20)."""
    n = np.asarray(train_counts)
    return {"many": n > many, "medium": (n <= many) & (n >= few), "few": n < few}


def shot_accuracy(per_class, train_counts, many: int = MANY_SHOT, few: int = FEW_SHOT) -> dict[str, float]:
    """Mean per-class accuracy within many (n > 100), medium and few (n < 20) shot groups.

    per_class (C,), train_counts (C,). Returns {"many", "medium", "few"}; NaN for an empty group.
    """
    acc = np.asarray(per_class, dtype=np.float64)
    n = np.asarray(train_counts)
    if acc.shape != n.shape:
        raise LtrayError(f"per_class {acc.shape} and train_counts {n.shape} must match")
    out = {}
    for name, mask in shot_masks(n, many, few).items():
        vals = acc[mask & ~np.isnan(acc)]
        out[name] = float(vals.mean()) if vals.size else float("nan")
    return out


def virtual_example_distribution(logits, tau: float = 1.0, power: float = 1.0) -> np.ndarray:
    """DiVE's virtual example distribution: for each class j, the sum over images of the
    tempered, power-normalised probability ``normalise(softmax(f / tau) ** power)_j``.

    logits (N, C) of the training images -> (C,) float64 summing to N. tau=1, power=1 is raw.
    """
    f = torch.as_tensor(logits, dtype=torch.float64)
    if f.ndim != 2:
        raise LtrayError(f"logits must be (N, C), got {tuple(f.shape)}")
    q = torch.softmax(f / tau, dim=1) ** power
    q = q / q.sum(1, keepdim=True)
    return q.sum(0).numpy()
