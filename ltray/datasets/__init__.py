"""Datasets by name, each split into long-tailed train / balanced validation / test. A dataset is
one small file here that registers itself (``registry.register``): how to load it into a
``DataBundle`` and what it supports. Registering makes it available to experiments, the CLI and
the registry-wide test. ``base`` holds the types, ``transforms`` the batched augmentation.
"""

from ltray.datasets.base import DEFAULT_VAL_PER_CLASS, DataBundle, DataConfig, Split, lt_train_val, progress, subset_hash
from ltray.datasets.registry import Dataset, dataset_names, get_dataset, load_data, register, resolve
from ltray.datasets.transforms import ImageList, augment_batch, to_float

# Importing the dataset files registers them.
from ltray.datasets import digits, cifar, fashion_mnist, list_file, gaussian  # noqa: E402,F401,I001

__all__ = ["DEFAULT_VAL_PER_CLASS", "DataBundle", "DataConfig", "Dataset", "ImageList", "Split", "augment_batch",
           "dataset_names", "get_dataset", "load_data", "lt_train_val", "progress", "register", "resolve",
           "subset_hash", "to_float"]
