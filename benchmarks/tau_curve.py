"""Exact tau curve vs a 1000-point grid on 10k x 100 random logits.

    python benchmarks/tau_curve.py

Prints both times, the ratio (goal >= 100x) and both tau* with their balanced accuracies.
"""

import time

import numpy as np

from ltray.core.longtail import lt_counts
from ltray.core.metrics import balanced_accuracy
from ltray.core.posthoc import tau_curve


def grid_curve(f, y, logp, taus):
    C = f.shape[1]
    return np.array([balanced_accuracy((f - t * logp).argmax(1), y, C) for t in taus])


def best_of(repeats, fn):
    """Fastest of a few runs (the first pays page faults and caches), and the result."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(N=10_000, C=100, points=1000, tau_max=3.0):
    rng = np.random.default_rng(0)
    counts = np.array(lt_counts(500, C, 100), dtype=np.float64)
    prior = counts / counts.sum()
    y = np.repeat(np.arange(C), N // C)
    f = rng.normal(0, 2, (N, C)) + 3.0 * np.eye(C)[y] + np.log(prior)  # a head-biased model
    t_exact, curve = best_of(5, lambda: tau_curve(f, y, prior, tau_max))
    taus = np.linspace(0, tau_max, points)
    t_grid, grid = best_of(2, lambda: grid_curve(f, y, np.log(prior), taus))
    g = int(np.argmax(grid))
    print(f"logits {N} x {C}, tau in [0, {tau_max}]")
    print(f"exact curve : {t_exact * 1e3:9.1f} ms, {curve.breakpoints.size - 1} segments, "
          f"tau* {curve.tau_star:.4f}, balanced acc {curve.best:.4f}")
    print(f"{points}-pt grid: {t_grid * 1e3:9.1f} ms, tau* {taus[g]:.4f}, balanced acc {grid[g]:.4f}")
    print(f"speed-up    : {t_grid / t_exact:.0f}x (goal >= 100x)")
    seg = np.searchsorted(curve.breakpoints, taus[g], side="right") - 1
    same = curve.best >= grid[g] - 1e-12 and abs(curve.at(curve.tau_star) - curve.best) < 1e-12
    print(f"agreement   : grid best {'<=' if same else '>'} exact best; grid's tau* falls in segment {seg} "
          f"[{curve.breakpoints[seg]:.4f}, {curve.breakpoints[seg + 1]:.4f}]")


if __name__ == "__main__":
    main()
