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


def paired_difference(correct_a, correct_b, labels, num_classes: int, groups: dict[str, np.ndarray],
                      shared_images: bool, replicates: int = 4000, seed: int = 0) -> dict[str, dict]:
    """Balanced-accuracy difference a - b per class group, with a paired bootstrap.

    correct_a, correct_b: (K seeds, N test images) booleans, each seed's two runs scored on the
    same images; labels: (K, N); groups: name -> boolean mask (C,) of the classes averaged
    ("bal_acc", "many", ...). ``shared_images``: every seed was tested on the same images (a
    fixed test set: CIFAR, Fashion-MNIST); each replicate then draws one resample of the images
    and applies it to every seed, since a seed adds no new test images. Otherwise (digits-lt's
    test split moves with the subset) each seed's images are resampled on their own.

    Per group: the observed mean difference over seeds, its 95% percentile interval, and the
    two-sided bootstrap p-value ``2 min(P*(d <= 0), P*(d >= 0))`` (+1 smoothing, so never 0),
    the p-value of the interval's inversion. A group with no class gets NaN.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    y = np.asarray(labels, np.int64)
    K = a.shape[0]
    rng = np.random.default_rng(seed)
    counts = np.stack([pair_counts(a[k], b[k], y[k], num_classes) for k in range(K)])  # (K, C, 4)
    n = counts.sum(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = (counts[..., 2] - counts[..., 1]) / n  # (K, C) observed
    picks = rng.integers(0, K, size=(replicates, K))  # seeds, with replacement, pairs kept
    if shared_images:
        if not (y == y[0]).all():
            raise ValueError("shared_images: every seed must list the same test images in the same order")
        star = _shared_image_draws(a.astype(np.int8) - b.astype(np.int8), y[0], num_classes, picks, rng)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = rng.multinomial(n[picks], counts[picks] / np.maximum(n, 1)[picks][..., None])  # (R, K, C, 4)
            star = (draws[..., 2] - draws[..., 1]) / n[picks]  # (R, K, C)
    out = {}
    for name, mask in groups.items():
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            out[name] = {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "p": float("nan")}
            continue
        observed = float(np.nanmean(per_class[:, mask], axis=1).mean())
        group_star = np.nanmean(star[..., mask], axis=2).mean(1)  # (R,)
        lo, hi = np.percentile(group_star, [2.5, 97.5])
        tail = min((group_star <= 0).sum() + 1, (group_star >= 0).sum() + 1) / (replicates + 1)
        out[name] = {"diff": observed, "lo": float(lo), "hi": float(hi), "p": float(min(1.0, 2 * tail))}
    return out


def _shared_image_draws(d: np.ndarray, labels: np.ndarray, num_classes: int, picks: np.ndarray,
                        rng: np.random.Generator, chunk: int = 256) -> np.ndarray:
    """(R, K, C) per-class differences under one class-stratified resample of the shared test
    images per replicate (multiplicities, so no (R, N) index array), then the picked seeds.
    d: (K, N) in {-1, 0, 1}; labels: (N,)."""
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels, minlength=num_classes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    present = sizes > 0
    ds = d[:, order].astype(np.float64)  # (K, N), images grouped by class
    out = np.full((picks.shape[0], picks.shape[1], num_classes), np.nan)
    for lo in range(0, picks.shape[0], chunk):
        r = min(chunk, picks.shape[0] - lo)
        m = np.concatenate([rng.multinomial(sizes[c], np.full(sizes[c], 1.0 / sizes[c]), size=r)
                            for c in range(num_classes) if present[c]], axis=1)  # (r, N) multiplicities
        sums = np.add.reduceat(m[:, None, :] * ds[None], starts[present], axis=2)  # (r, K, C present)
        per = np.full((r, ds.shape[0], num_classes), np.nan)
        per[..., present] = sums / sizes[present]
        out[lo:lo + r] = per[np.arange(r)[:, None], picks[lo:lo + r]]
    return out
