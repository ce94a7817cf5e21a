"""fashion-mnist-lt: Zalando's Fashion-MNIST (70,000 real 28x28 grey images, 10 classes), read
from the four idx ``.gz`` files Debian ships (``apt-get install dataset-fashion-mnist``), cut to
the CIFAR-10-LT profile. docs/METHODS.md asks for ``n_max = 6000`` (rho 100: 14,886 images, 60 in the
rarest class), but the head class has exactly 6,000 images and validation comes from the images
the profile leaves out, so ``n_max`` is 6,000 less ``val_per_class``: 5,980 by default (14,837
images, 59 in the rarest class). Validation is balanced; test is the untouched official
10,000-image test set."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from ltray.datasets.base import DataBundle, DataConfig, Split, lt_train_val, subset_hash
from ltray.datasets.registry import Dataset, register
from ltray.errors import LtrayError

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
N_MAX = 6000  # images per class in the official training set
MEAN, STD = (0.2860,), (0.3530,)  # of the official training images, on [0, 1]


def _root(cfg: DataConfig) -> Path:
    # the study default "data" means "not set": the Debian folder
    return Path(DEBIAN_ROOT if cfg.root in ("", "data") else cfg.root).expanduser()


def read_idx(path: Path) -> np.ndarray:
    """An idx file (LeCun's MNIST format, optionally gzipped): big-endian magic (0, 0, type 0x08
    = uint8, number of dimensions), one big-endian uint32 per dimension, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) != 4 or head[:2] != b"\0\0" or head[2] != 0x08:
                raise LtrayError(f"{path} is not an idx file of uint8 (magic {head.hex()})")
            dims = struct.unpack(f">{head[3]}I", f.read(4 * head[3]))
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except (OSError, EOFError, struct.error) as e:
        raise LtrayError(f"{path}: cannot read it as an idx file ({e})") from e
    if data.size != int(np.prod(dims)):
        raise LtrayError(f"{path}: holds {data.size} values, its header says {dims} (a truncated file?)")
    return data.reshape(dims)


def _split(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (read_idx(root / f) for f in FILES[name])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise LtrayError(f"{root}: {name} images {images.shape} and labels {labels.shape} do not match")
    if labels.max() >= 10:
        raise LtrayError(f"{root}: {name} label {labels.max()} out of range for 10 classes")
    return images[:, None], labels.astype(np.int64)  # (N, 1, 28, 28) uint8


def _check(cfg: DataConfig) -> None:
    root = _root(cfg)
    missing = [f for pair in FILES.values() for f in pair if not (root / f).is_file()]
    if missing:
        hint = ("install Debian's package: sudo apt-get install -y dataset-fashion-mnist" if str(root) == DEBIAN_ROOT
                else f"put the four Fashion-MNIST idx .gz files there, or leave data.root unset for {DEBIAN_ROOT}")
        raise LtrayError(f"fashion-mnist-lt: {root} lacks {', '.join(missing)}; {hint}")


def _fashion(cfg: DataConfig) -> DataBundle:
    _check(cfg)
    root = _root(cfg)
    x, y = _split(root, "train")
    xt, yt = _split(root, "test")
    n_max = min(N_MAX, int(np.bincount(y, minlength=10).min()) - cfg.val_per_class)
    train, val = lt_train_val(y, n_max, 10, cfg)
    t = torch.from_numpy
    return DataBundle(
        name=cfg.name, num_classes=10,
        train=Split(t(y[train]), t(x[train])), val=Split(t(y[val]), t(x[val])), test=Split(t(yt), t(xt.copy())),
        subset_hash=subset_hash(cfg.name, train, val, np.arange(yt.size)),
        mean=MEAN, std=STD, augment="crop_flip", image_size=28,
    )


DATASET = register(Dataset(
    name="fashion-mnist-lt",
    summary="Fashion-MNIST (Debian's dataset-fashion-mnist), CIFAR-10-LT profile with n_max 6000",
    load=_fashion, classes=10, check=_check, max_rho=lambda cfg: N_MAX - cfg.val_per_class))
