"""Datasets by name. A dataset is one small file here: how to load it into a ``DataBundle``
(train long-tailed, validation balanced, test untouched) and what it supports. Registering it
(``register``) makes it available to experiments, the CLI and tests/test_data.py's
registry-wide test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ltray.data import DataBundle, DataConfig
from ltray.errors import LtrayError


@dataclass(frozen=True)
class Dataset:
    name: str
    """Registry name, e.g. "digits-lt"."""
    summary: str
    """One line for --help and the README."""
    load: Callable[[DataConfig], DataBundle]
    """Build the splits from a resolved DataConfig; raises LtrayError on bad or missing data."""
    classes: int = 0
    """Fixed number of classes (0: read from the files); data.counts needs it."""
    square_images: bool = True
    """In-memory square images: rotation pre-training (SSP) works on them."""
    points: bool = False
    """Feature vectors, not images: only model "linear" fits (gaussian-lt)."""
    fixed_test: bool = True
    """Every subset seed is tested on the same images (an official test set); False where the
    test split moves with the subset (digits-lt, gaussian-lt). The paired bootstrap needs it."""
    max_val_per_class: int = 0
    """The most validation images per class it has room for (0: no limit known)."""
    check: Callable[[DataConfig], None] = lambda cfg: None
    """A cheap check before Ray starts (missing files); raises LtrayError saying what to do."""


_REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    if dataset.name in _REGISTRY:
        raise ValueError(f"dataset {dataset.name!r} registered twice")
    _REGISTRY[dataset.name] = dataset
    return dataset


def get_dataset(name: str) -> Dataset:
    if name not in _REGISTRY:
        raise LtrayError(f"unknown dataset {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def dataset_names() -> list[str]:
    return list(_REGISTRY)


# Importing the dataset files registers them.
from ltray.datasets import digits, cifar, fashion_mnist, list_file, gaussian  # noqa: E402,F401,I001
