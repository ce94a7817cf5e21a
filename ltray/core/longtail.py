"""Long-tailed subsets, validation splits and shifted test sets (index math only)."""

from __future__ import annotations

import numpy as np

from ltray.errors import LtrayError

DIRECTIONS = ("forward", "backward", "uniform")
# LADE / SADE protocol: 5 ratios x 2 directions + uniform = 11 test sets.
SHIFT_RATIOS = (50, 25, 10, 5, 2)


def _labels(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise LtrayError(f"labels must be 1-D (N,), got shape {y.shape}")
    if y.size and (y.min() < 0 or not np.issubdtype(y.dtype, np.integer)):
        raise LtrayError("labels must be non-negative integers")
    return y.astype(np.int64)


def lt_counts(n_max: int, num_classes: int, rho: float) -> list[int]:
    """Exponential long-tail profile: class c keeps ``int(n_max * rho ** (-c / (C - 1)))`` images.

    Returns a list of C ints, head first; ``rho = n_max / n_min >= 1`` (rho=1 is balanced).
    """
    if not rho >= 1:
        raise LtrayError(f"imbalance ratio rho must be >= 1 (n_max / n_min), got {rho!r}")
    if num_classes < 2:
        raise LtrayError(f"num_classes must be >= 2, got {num_classes}")
    if n_max < 1:
        raise LtrayError(f"n_max must be >= 1, got {n_max}")
    return [int(n_max * rho ** (-c / (num_classes - 1))) for c in range(num_classes)]


def lt_indices(labels, counts, seed: int) -> np.ndarray:
    """Pick ``counts[c]`` indices of each class c at random (seeded), like LDAM-DRW's subset.

    labels: (N,) ints; counts: (C,). Returns sorted int64 indices, (sum(counts),).
    """
    y = _labels(labels)
    rng = np.random.default_rng(seed)
    out = []
    for c, n in enumerate(counts):
        idx = np.flatnonzero(y == c)
        if n > idx.size:
            raise LtrayError(f"class {c} has {idx.size} images, the profile asks for {n}")
        out.append(rng.permutation(idx)[:n])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def split_validation(labels, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``per_class`` images of every class as a balanced validation set.

    labels: (N,) ints of a pool. Returns (rest, val): sorted int64 positions into ``labels``.
    """
    y = _labels(labels)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if per_class > idx.size:
            raise LtrayError(f"class {c} has {idx.size} images left, validation asks for {per_class}")
        val.append(rng.permutation(idx)[:per_class])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(y.size), val_idx)
    return rest, val_idx


def shifted_test_indices(test_labels, train_counts, ratio: float, direction: str) -> np.ndarray:
    """One shifted test label distribution (LADE/SADE protocol).

    Classes are ranked by training count (head first, ties by class id). The k-th class keeps
    its first ``int(m * ratio ** (-k / (C - 1)))`` test images in their stored order
    ("forward": same direction as training), or with k -> C-1-k ("backward"); "uniform" keeps
    all m. m is the smallest per-class test count. Returns sorted int64 indices into test_labels.
    """
    if direction not in DIRECTIONS:
        raise LtrayError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if direction != "uniform" and not ratio >= 1:
        raise LtrayError(f"shift ratio must be >= 1, got {ratio!r}")
    y = _labels(test_labels)
    counts = np.asarray(train_counts)
    C = counts.size
    if y.size and y.max() >= C:
        raise LtrayError(f"test label {y.max()} out of range for {C} classes")
    per_class = [np.flatnonzero(y == c) for c in range(C)]
    m = min(p.size for p in per_class)
    rank = np.argsort(-counts, kind="stable")  # rank[k] = class with the k-th largest count
    keep = []
    for k, c in enumerate(rank):
        if direction == "uniform":
            n = m
        else:
            kk = k if direction == "forward" else C - 1 - k
            n = int(m * ratio ** (-kk / (C - 1)))
        keep.append(per_class[c][:n])
    return np.sort(np.concatenate(keep))


def shift_names() -> list[tuple[str, float, str]]:
    """The 11 shifted test sets as (name, ratio, direction), forward-50 ... uniform ... backward-50."""
    fw = [(f"forward{r}", float(r), "forward") for r in SHIFT_RATIOS]
    bw = [(f"backward{r}", float(r), "backward") for r in reversed(SHIFT_RATIOS)]
    return fw + [("uniform", 1.0, "uniform")] + bw
