"""The types every dataset builds: ``DataConfig`` (which data, how to cut it), ``Split`` and
``DataBundle`` (train long-tailed, validation balanced, test untouched), and the long-tail cut
itself. In-memory datasets keep images as one uint8 tensor so the training loop samples batches
by index; ``list-file`` datasets keep paths.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from ltray.core.longtail import lt_counts, lt_indices, split_validation
from ltray.errors import LtrayError


@dataclass(frozen=True)
class DataConfig:
    """Which data to train on and how to cut it."""

    name: str = "digits-lt"
    """Dataset name, from the datasets registry."""
    rho: float = 100.0
    """Imbalance ratio n_max / n_min of the training set (>= 1)."""
    root: str = "data"
    """Folder holding the data (CIFAR: the folder containing cifar-10-batches-py)."""
    download: bool = False
    """Allow downloading CIFAR into root when it is missing."""
    val_per_class: int = 0
    """Balanced validation images per class, held out from images the profile left out; 0 = the
    dataset's default (20; digits-lt 15, the most it has room for). The study records the real number."""
    subset_seed: int = 0
    """Seed choosing which images form the long-tailed subset and the validation split."""
    train_list: str = ""
    """list-file: 'path label' file of the training set (paths relative to root)."""
    val_list: str = ""
    """list-file: the shipped validation list."""
    test_list: str = ""
    """list-file: the test list."""
    image_size: int = 224
    """list-file: side of the square crop fed to the model, in pixels."""
    counts: tuple[int, ...] = ()
    """Explicit training images per class, overriding rho's profile (seed 003's toy studies)."""


@dataclass
class Split:
    """One split. In memory: ``x`` uint8 (N, C, H, W) or float (N, D); else ``paths``."""

    y: torch.Tensor
    x: torch.Tensor | None = None
    paths: list[str] | None = None

    def __len__(self) -> int:
        return int(self.y.numel())


@dataclass
class DataBundle:
    """Train / validation / test splits of one dataset plus what every method needs."""

    name: str
    num_classes: int
    train: Split
    val: Split
    test: Split
    subset_hash: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    augment: str = "none"  # "crop_flip" (pad 4), "crop" (pad 1, digits), "none"
    image_size: int = 0
    extra: dict = field(default_factory=dict)  # e.g. gaussian-lt's Bayes-optimal balanced error

    @property
    def train_counts(self) -> np.ndarray:
        return np.bincount(self.train.y.numpy(), minlength=self.num_classes)

    @property
    def in_memory(self) -> bool:
        return self.train.x is not None

    @property
    def input_shape(self) -> tuple[int, int]:
        """(image channels, flat input size) for ``build_model``; file lists are RGB images."""
        if not self.in_memory:
            return 3, 0
        x = self.train.x
        return (x.shape[1] if x.ndim == 4 else 3), int(np.prod(x.shape[1:]))


def subset_hash(name: str, *index_arrays) -> str:
    """A short content hash of the chosen indices: results carry it to prove which subset."""
    h = hashlib.sha256(name.encode())
    for a in index_arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.int64)).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def progress(it, total: int, desc: str):
    """A plain text progress bar on stderr for data preparation (no extra dependency)."""
    step = max(total // 20, 1)
    for i, item in enumerate(it, 1):
        if i % step == 0 or i == total:
            filled = int(20 * i / total)
            print(f"\r{desc} [{'#' * filled}{'.' * (20 - filled)}] {i}/{total}", end="", file=sys.stderr)
        yield item
    print(file=sys.stderr)


DEFAULT_VAL_PER_CLASS = 20


def lt_train_val(labels: np.ndarray, n_max: int, C: int, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Long-tailed train indices, then a balanced validation set from the images left out."""
    counts = list(cfg.counts) if cfg.counts else lt_counts(n_max, C, cfg.rho)
    if len(counts) != C or min(counts) < 1:
        raise LtrayError(f"data.counts needs {C} positive counts, one per class; got {len(counts)}: {counts}")
    train = lt_indices(labels, counts, cfg.subset_seed)
    left = np.setdiff1d(np.arange(labels.size), train)
    _, val_pos = split_validation(labels[left], cfg.val_per_class, cfg.subset_seed + 1)
    return train, left[val_pos]
