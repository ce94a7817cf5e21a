"""Compatibility shim: the data types and loading moved to ``ltray.datasets`` (0.2). Experiment
files that import ``from ltray.data import DataConfig`` keep working; new ones import from
``ltray.config`` (or ``ltray.datasets``)."""

from ltray.datasets import (DEFAULT_VAL_PER_CLASS, DataBundle, DataConfig, ImageList, Split, augment_batch,  # noqa: F401
                            load_data, lt_train_val, progress, resolve, subset_hash, to_float)
