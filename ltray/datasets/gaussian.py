"""gaussian-lt: the LA paper's two-Gaussian problem (Figure 2) with its closed-form Bayes error."""

from __future__ import annotations

import math

import numpy as np
import torch

from ltray.datasets.base import DataBundle, DataConfig, Split, subset_hash
from ltray.datasets.registry import Dataset, register
from ltray.errors import LtrayError

GAUSS_DIM = 2
GAUSS_SHIFT = 1.0  # class means at +-1 on every axis; unit variance


def gaussian_bayes_balanced_error(dim: int = GAUSS_DIM, shift: float = GAUSS_SHIFT) -> float:
    """Bayes-optimal balanced error of two unit-variance Gaussians at +-shift*1_d:
    the balanced-optimal rule thresholds at the midpoint, error ``Phi(-||mu1 - mu0|| / 2)``."""
    half_gap = shift * math.sqrt(dim)
    return 0.5 * math.erfc(half_gap / math.sqrt(2.0))


def _gaussian(cfg: DataConfig, n_train: int = 10000, n_eval: int = 10000) -> DataBundle:
    rng = np.random.default_rng(cfg.subset_seed)
    p_minor = 1.0 / (1.0 + cfg.rho)  # n_major / n_minor = rho

    def draw(n: int, balanced: bool):
        y = (np.arange(n) % 2) if balanced else (rng.random(n) < p_minor).astype(np.int64)
        x = rng.standard_normal((n, GAUSS_DIM)) + np.where(y[:, None] == 1, GAUSS_SHIFT, -GAUSS_SHIFT)
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))

    xtr, ytr = draw(n_train, False)
    if int(ytr.min()) == int(ytr.max()):
        raise LtrayError(f"gaussian-lt: rho={cfg.rho} left no minority example in {n_train} draws")
    xv, yv = draw(2 * cfg.val_per_class, True)
    xt, yt = draw(n_eval, True)
    return DataBundle(
        name="gaussian-lt", num_classes=2,
        train=Split(ytr, xtr), val=Split(yv, xv), test=Split(yt, xt),
        subset_hash=subset_hash(f"gaussian-lt:{cfg.rho}:{cfg.subset_seed}", ytr.numpy()),
        augment="none", extra={"bayes_balanced_error": gaussian_bayes_balanced_error()},
    )


DATASET = register(Dataset(
    name="gaussian-lt", summary="two 2-d unit Gaussians at +-(1, 1), prior ratio rho (model linear)",
    load=_gaussian, classes=2, square_images=False, points=True, fixed_test=False))
