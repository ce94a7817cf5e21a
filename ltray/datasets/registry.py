"""The dataset registry: a dataset is one small file that registers a ``Dataset`` (how to load
it into a ``DataBundle`` and what it supports); ``load_data`` and ``resolve`` find it by name."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ltray.datasets.base import DEFAULT_VAL_PER_CLASS, DataBundle, DataConfig
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
    max_rho: Callable[[DataConfig], float] | None = None
    """The largest rho whose long-tail cut leaves every class a training image (its n_max), for a
    resolved config; None where rho does not cut (list-file) or the dataset checks on load."""
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


def resolve(cfg: DataConfig) -> DataConfig:
    """``cfg`` with dataset defaults made explicit (``val_per_class=0`` -> the real number), so
    that what a study records is what it used; a value the dataset cannot hold is refused."""
    most = get_dataset(cfg.name).max_val_per_class or None
    n = cfg.val_per_class or (most or DEFAULT_VAL_PER_CLASS)
    if n < 1:
        raise LtrayError(f"data.val_per_class must be >= 1 (or 0 for the dataset's default), got {cfg.val_per_class}")
    if most is not None and n > most:
        raise LtrayError(f"data.val_per_class={n}: {cfg.name} has room for at most {most} validation images per "
                         f"class; set data.val_per_class to {most} or less (0 = {most})")
    return replace(cfg, val_per_class=n) if n != cfg.val_per_class else cfg


def load_data(cfg: DataConfig) -> DataBundle:
    """Build the train / validation / test splits of ``cfg.name``; raises LtrayError on bad input."""
    dataset = get_dataset(cfg.name)
    if not cfg.rho >= 1:
        raise LtrayError(f"data.rho must be >= 1 (n_max / n_min), got {cfg.rho!r}")
    return dataset.load(resolve(cfg))
