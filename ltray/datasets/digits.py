"""digits-lt: scikit-learn's 1,797 8x8 digits (shipped with it), made long-tailed: the quick default."""

from __future__ import annotations

import os

import numpy as np
import torch

from ltray.core.longtail import split_validation
from ltray.datasets.base import DataBundle, DataConfig, Split, lt_train_val, subset_hash
from ltray.datasets.registry import Dataset, register

DIGITS_TEST_PER_CLASS = 40
DIGITS_N_MAX = 115  # the rarest digit has 174 images: 40 test + 15 validation + 115 train + 4 spare
DIGITS_VAL_MAX = 15


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as (images 0..16 float64 (n, 8, 8), labels int64).

    Read straight from the CSV scikit-learn ships: importing ``sklearn.datasets`` costs 1.4 s
    here, paid again by every trial's fresh worker process; the file takes 20 ms."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz") if spec else ""
    if not os.path.isfile(path):
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images, d.target.astype(np.int64)
    raw = np.loadtxt(path, delimiter=",")
    return raw[:, :-1].reshape(-1, 8, 8), raw[:, -1].astype(np.int64)


def _digits(cfg: DataConfig) -> DataBundle:
    images, y = digits_arrays()
    x = np.round(images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    pool, test = split_validation(y, DIGITS_TEST_PER_CLASS, cfg.subset_seed + 100)
    tr, va = lt_train_val(y[pool], DIGITS_N_MAX, 10, DataConfig(rho=cfg.rho, val_per_class=cfg.val_per_class,
                                                                    subset_seed=cfg.subset_seed, counts=cfg.counts))
    train, val = pool[tr], pool[va]
    t = torch.from_numpy
    return DataBundle(
        name="digits-lt", num_classes=10,
        train=Split(t(y[train]), t(x[train])), val=Split(t(y[val]), t(x[val])), test=Split(t(y[test]), t(x[test])),
        subset_hash=subset_hash("digits-lt", train, val, test),
        mean=(0.33,), std=(0.38,), augment="crop", image_size=8,
    )


DATASET = register(Dataset(
    name="digits-lt", summary="scikit-learn's 8x8 digits, long-tailed (n_max 115, 40 test images per class)",
    load=_digits, classes=10, max_val_per_class=DIGITS_VAL_MAX, fixed_test=False, max_rho=lambda cfg: DIGITS_N_MAX))
