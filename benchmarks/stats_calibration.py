"""Is the paired test's error rate what it says? Null studies (two methods drawn from the same
distribution) and studies with a true difference, simulated with the shapes of ltray's real
studies, tested by the old procedure (a percentile bootstrap over seeds and test images, up to
0.2) and the new one (``ltray.core.stats.paired_difference``: the generalized (fiducial) p-value
and interval for the sum of the seed variance, K - 1 degrees of freedom, and the test set's
variance, in closed form).

    python benchmarks/stats_calibration.py [--studies 1000] [--old-studies 200]

Shapes: fashion-mnist-lt (10 classes x 1,000 test images, the same for every seed) and digits-lt
(10 classes x 40 test images, drawn afresh with each seed's subset). Noise regimes:
- seed noise dominant: per seed, 1 point of overall and 2 points of per-class accuracy jitter;
  an image's difficulty shared by both methods and every seed (they err on the same images);
- test noise dominant: 0.1 and 0.2 points of jitter; each method errs on its own images (the
  same ones for every seed of it), so which images the test set holds is the noise.
Prints, per shape, regime and number of seeds K, the share of null studies called different at
p < 0.05 (want 5%), and the power at true differences of 1 and 3 points.
"""

import argparse
import time

import numpy as np

from ltray.core import stats

SHAPES = {  # classes, test images per class, shared by the seeds, each class's accuracy (head to tail)
    "fashion-mnist-lt": (10, 1000, True, np.linspace(0.92, 0.62, 10)),
    "digits-lt": (10, 40, False, np.linspace(0.98, 0.45, 10)),
}
REGIMES = {"seed noise dominant": (0.01, 0.02, True), "test noise dominant": (0.001, 0.002, False)}
ALL = {"bal_acc": np.ones(10, bool)}


def simulate(rng, shape: str, regime: str, K: int, delta: float = 0.0):
    """One study: (correct a (K, N), correct b (K, N), labels (K, N), shared)."""
    C, n, shared, base = SHAPES[shape]
    seed_sd, class_sd, coupled = REGIMES[regime]
    p = base[None, None] + rng.normal(0, seed_sd, (2, K, 1)) + rng.normal(0, class_sd, (2, K, C))
    p[0] += delta
    p = np.clip(p, 0.001, 0.999)
    y = np.repeat(np.arange(C), n)
    images = 1 if shared else K  # a shared test set is one draw of images for every seed
    u = rng.random((1 if coupled else 2, images, y.size))  # each image's difficulty
    u = np.broadcast_to(u, (2, K, y.size))
    correct = u < p[:, :, y]
    return correct[0], correct[1], np.tile(y, (K, 1)), shared


def rate(rng, shape, regime, K, delta, studies, procedure) -> float:
    hits = 0
    for _ in range(studies):
        a, b, y, shared = simulate(rng, shape, regime, K, delta)
        p = procedure(a, b, y, shared)
        hits += p < 0.05
    return hits / studies


def new(a, b, y, shared) -> float:
    return stats.paired_difference(a, b, y, 10, ALL, shared)["bal_acc"]["p"]


def old(a, b, y, shared) -> float:
    return old_bootstrap(a, b, y, 10, ALL, shared, replicates=1000)["bal_acc"]["p"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--studies", type=int, default=1000, help="simulated studies per cell, new procedure")
    p.add_argument("--old-studies", type=int, default=200, help="per cell for the old bootstrap (slow)")
    p.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5, 10])
    a = p.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.time()
    print(f"share of studies called different at p < 0.05 ({a.studies} studies a cell for the new test, "
          f"{a.old_studies} for the old bootstrap)")
    print(f"{'shape':<17} {'regime':<20} {'K':>3} {'null old':>9} {'null new':>9} {'power 1pt':>10} {'power 3pt':>10}")
    for shape in SHAPES:
        for regime in REGIMES:
            for K in a.seeds:
                null_new = rate(rng, shape, regime, K, 0.0, a.studies, new)
                null_old = rate(rng, shape, regime, K, 0.0, a.old_studies, old) if a.old_studies else float("nan")
                power = [rate(rng, shape, regime, K, d, a.studies, new) for d in (0.01, 0.03)]
                print(f"{shape:<17} {regime:<20} {K:>3} {null_old:>9.1%} {null_new:>9.1%} {power[0]:>10.1%} "
                      f"{power[1]:>10.1%}", flush=True)
    print(f"({time.time() - t0:.0f} s)")


# The procedure before 0.2 (ltray/stats.py at 9120648), kept here as the reference it is measured against.
def old_bootstrap(correct_a, correct_b, labels, num_classes: int, groups: dict[str, np.ndarray],
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
    counts = np.stack([stats.pair_counts(a[k], b[k], y[k], num_classes) for k in range(K)])  # (K, C, 4)
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


if __name__ == "__main__":
    main()
