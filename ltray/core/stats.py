"""Statistics for comparing methods over paired seeds (pure numpy and scipy: arrays in, numbers out).

The estimand of a paired comparison is a method's expected balanced-accuracy difference from the
baseline over training seeds *and* over test sets drawn from the same distribution. Its
estimate is the mean over K paired seeds of the per-seed differences, and two noises make its
variance: the seed-to-seed variance of the differences (estimated from the K seeds, K - 1
degrees of freedom) and, when every seed is tested on the same images, the test set's own
sampling variance of the mean difference, which more seeds cannot shrink (in closed form from
the per-image paired differences, stratified by class; its thousands of images estimate it
well). The p-value and interval are the generalized (fiducial) ones for such a sum
(Tsui & Weerahandi, JASA 1989; Weerahandi 1995): the seed variance is drawn from its
chi-square(K - 1) fiducial distribution, the test variance taken as known, and the normal
tail averaged over the draws (:func:`paired_difference`). With no test-set part this is exactly
Student's t with K - 1 degrees of freedom; with no seed part, the normal test.

Why this and not the alternatives, measured (``benchmarks/stats_calibration.py``, 3,000 null
studies a cell, fashion-mnist-lt shapes): Welch-Satterthwaite degrees of freedom for the sum
called noise "different" in 10.6% of null studies at 2 seeds (one seed degree of freedom: a
seed variance small by chance hands the sum many degrees of freedom); the percentile bootstrap
over seeds and images this replaced, in 13% at 3 seeds (it ignores how badly K seeds estimate
the seed variance); the paired t over seeds alone ignores the test set, 22-72% when test noise
dominates. Wilcoxon over seeds cannot go below p = 0.0625 at 5 seeds.
Comparisons of several methods against one baseline are corrected with Holm's step-down (:func:`holm`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps


def t975(dof: float) -> float:
    """Two-sided 95% Student-t quantile (the normal quantile for infinite dof)."""
    return float(sps.t.ppf(0.975, dof)) if math.isfinite(dof) else 1.959963984540054


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
                      shared_images: bool) -> dict[str, dict]:
    """Balanced-accuracy difference a - b per class group, over K paired seeds (see the module
    docstring for the estimand and why this interval).

    correct_a, correct_b: (K seeds, N test images) booleans, each seed's two runs scored on the
    same images; labels: (K, N); groups: name -> boolean mask (C,) of the classes averaged
    ("bal_acc", "many", ...). ``shared_images``: every seed was tested on the same images (a
    fixed test set: CIFAR, Fashion-MNIST); their sampling noise is then common to all seeds and
    added in closed form. Otherwise (digits-lt's test split moves with the subset) each seed's
    difference already carries its own test set's noise, and the seeds' variance holds it.

    Per group: ``diff`` (the mean over seeds of the per-seed balanced-accuracy difference),
    ``seed_se`` and ``test_se`` (the two parts of its standard error), the 95% interval
    ``lo``/``hi``, the two-sided ``p`` and ``seeds`` (K). With one seed there is no seed variance
    to estimate: the standard errors, interval and p are NaN (the difference of these two
    trained models only). A group with no class gets NaN throughout.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    y = np.asarray(labels, np.int64)
    K = a.shape[0]
    counts = np.stack([pair_counts(a[k], b[k], y[k], num_classes) for k in range(K)])  # (K, C, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = (counts[..., 2] - counts[..., 1]) / counts.sum(2)  # (K, C) per-seed accuracy differences
    if shared_images and not (y == y[0]).all():
        raise ValueError("shared_images: every seed must list the same test images in the same order")
    test_var = _class_test_variance(a, b, y[0], num_classes) if shared_images else np.zeros(num_classes)
    out = {}
    for name, mask in groups.items():
        mask = np.asarray(mask, dtype=bool) & ~np.isnan(per_class).all(0)
        if not mask.any():
            out[name] = _result(float("nan"), float("nan"), float("nan"), K)
            continue
        d = np.nanmean(per_class[:, mask], axis=1)  # (K,) each seed's balanced-accuracy difference
        seed_var = float(d.var(ddof=1)) / K if K > 1 else float("nan")
        image_var = float(test_var[mask].sum()) / mask.sum() ** 2  # of a mean over classes of class means
        out[name] = _result(float(d.mean()), seed_var, image_var, K)
    return out


def _class_test_variance(a: np.ndarray, b: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per class c: the sampling variance of the mean paired difference over c's test images,
    s_c^2 / n_c, where each image's difference is averaged over the seeds (all tested on it)."""
    delta = (a.astype(np.float64) - b.astype(np.float64)).mean(0)  # (N,)
    n = np.bincount(labels, minlength=num_classes).astype(np.float64)
    total = np.bincount(labels, delta, num_classes)
    sq = np.bincount(labels, delta**2, num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (sq - total**2 / n) / (n - 1)  # the sample variance within each class (ddof 1)
    return np.where(n > 1, var / n, 0.0)


FIDUCIAL_DRAWS = 400  # chi-square quantiles averaged over: the p-value to ~1e-3 (measured against 20,000)


def _result(diff: float, seed_var: float, test_var: float, seeds: int) -> dict:
    """The generalized p-value and interval of ``diff`` whose variance is seed_var (an estimate
    with seeds - 1 degrees of freedom) + test_var (known); no test with one seed."""
    nan = float("nan")
    out = {"diff": diff, "seed_se": math.sqrt(seed_var) if seed_var >= 0 else nan,
           "test_se": math.sqrt(test_var), "lo": nan, "hi": nan, "p": nan, "seeds": seeds}
    if seeds < 2 or not math.isfinite(diff):
        return out
    if seed_var + test_var == 0:  # every seed and image agree: the difference is what it is
        return out | {"lo": diff, "hi": diff, "p": 1.0 if diff == 0 else 0.0}
    u = sps.chi2.ppf((np.arange(FIDUCIAL_DRAWS) + 0.5) / FIDUCIAL_DRAWS, seeds - 1)
    sd = np.sqrt(seed_var * (seeds - 1) / u + test_var)  # the fiducial draws of the standard error

    def p_at(x: float) -> float:
        return float(np.mean(2 * sps.norm.sf(abs(x) / sd)))

    lo, hi = 0.0, float(sd.max()) * 10  # p_at(hi) ~ 0; p_at is decreasing in the half-width
    for _ in range(60):  # bisection to the 95% half-width
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_at(mid) > 0.05 else (lo, mid)
    return out | {"lo": diff - hi, "hi": diff + hi, "p": p_at(diff)}


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment of m p-values (NaN entries left out of m and returned NaN):
    the i-th smallest becomes max over j <= i of min(1, (m - j + 1) p_(j)). Rejecting where the
    adjusted p < alpha holds the family-wise error rate at alpha."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = order.size, 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out.tolist()


def best_of_draws(keys, k: int) -> np.ndarray:
    """Per configuration of a pool of M, the probability that it is the best of ``k`` drawn
    uniformly with replacement: the exact order statistics behind "expected validation
    performance" (Dodge et al., EMNLP 2019, "Show Your Work"). ``keys`` order the pool (higher is
    better; give ties distinct keys, e.g. (score, -index), so the earlier of equals wins). The
    i-th worst of M is the best of k draws with probability (i/M)^k - ((i-1)/M)^k."""
    m = len(keys)
    out = np.zeros(m, dtype=np.float64)
    if m == 0 or k < 1:
        return out
    for rank, i in enumerate(sorted(range(m), key=lambda j: keys[j]), start=1):
        out[i] = (rank / m) ** k - ((rank - 1) / m) ** k
    return out
