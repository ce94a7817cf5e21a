"""Statistics for comparing methods over paired seeds (pure numpy: arrays in, numbers out).

Why a paired bootstrap over seeds *and* test images, not a Wilcoxon test over seeds: with the 5
seeds a study affords, Wilcoxon's exact two-sided p-value cannot go below 2 / 2^5 = 0.0625,
so it could never call any difference significant; and the test set is itself a sample, whose
noise a seed-level test ignores. The bootstrap resamples seeds (keeping each seed's pair of
runs together) and, within each seed and class, test images (keeping each image's pair of
predictions together), so both sources of noise are in the interval.
"""

from __future__ import annotations

import math

import numpy as np


def t975(dof: int) -> float:
    """Two-sided 95% Student-t quantile (scipy-free table, then the normal limit)."""
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
             15: 2.131, 20: 2.086, 30: 2.042}
    if dof in table:
        return table[dof]
    keys = sorted(k for k in table if k < dof)
    return table[keys[-1]] if dof < 30 else 1.96 + 2.4 / dof


def mean_ci(values) -> dict:
    """Mean, sample std and the half-width of a two-sided 95% t-interval (NaN and None ignored)."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "ci95": float("nan")}
    std = float(v.std(ddof=1)) if v.size > 1 else float("nan")
    return {"n": int(v.size), "mean": float(v.mean()), "std": std,
            "ci95": t975(v.size - 1) * std / math.sqrt(v.size) if v.size > 1 else float("nan")}


def pair_counts(correct_a: np.ndarray, correct_b: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """For one seed: per class, how many test images each method got right, as (C, 4) counts of
    (a wrong b wrong, a wrong b right, a right b wrong, a right b right)."""
    code = 2 * np.asarray(correct_a, dtype=np.int64) + np.asarray(correct_b, dtype=np.int64)
    out = np.zeros((num_classes, 4), dtype=np.int64)
    np.add.at(out, (np.asarray(labels, dtype=np.int64), code), 1)
    return out


def paired_difference(counts: np.ndarray, groups: dict[str, np.ndarray], replicates: int = 4000,
                      seed: int = 0) -> dict[str, dict]:
    """Balanced-accuracy difference a - b per class group, with a paired bootstrap.

    counts: (K seeds, C classes, 4) from :func:`pair_counts`; groups: name -> boolean mask (C,)
    of the classes averaged (e.g. "overall", "many", "medium", "few"). Per group: the observed
    mean difference over seeds, its 95% percentile interval, and the two-sided bootstrap
    p-value ``2 min(P*(d <= 0), P*(d >= 0))`` (with +1 smoothing, so never 0), the p-value of
    the interval's inversion. A group with no class gets NaN.
    """
    counts = np.asarray(counts, dtype=np.int64)
    K, C, _ = counts.shape
    n = counts.sum(2)  # (K, C) test images per class
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, K, size=(replicates, K))  # seeds, with replacement, pairs kept
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / np.maximum(n, 1)[..., None]
        draws = rng.multinomial(n[picks], p[picks])  # (R, K, C, 4): images, with replacement, pairs kept
        per_class_star = (draws[..., 2] - draws[..., 1]) / n[picks]  # (R, K, C)
        per_class = (counts[..., 2] - counts[..., 1]) / n  # (K, C)
    out = {}
    for name, mask in groups.items():
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            out[name] = {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "p": float("nan")}
            continue
        observed = float(np.nanmean(per_class[:, mask], axis=1).mean())
        star = np.nanmean(per_class_star[..., mask], axis=2).mean(1)  # (R,)
        lo, hi = np.percentile(star, [2.5, 97.5])
        tail = min((star <= 0).sum() + 1, (star >= 0).sum() + 1) / (replicates + 1)
        out[name] = {"diff": observed, "lo": float(lo), "hi": float(hi), "p": float(min(1.0, 2 * tail))}
    return out
