"""CIFAR-10-LT and CIFAR-100-LT from the official python-version batches (LDAM-DRW's profile)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ltray.datasets.base import DataBundle, DataConfig, Split, lt_train_val, subset_hash
from ltray.datasets.registry import Dataset, register
from ltray.errors import LtrayError

CIFAR = {
    "cifar10-lt": dict(folder="cifar-10-batches-py", train=[f"data_batch_{i}" for i in range(1, 6)],
                       test=["test_batch"], key="labels", classes=10, n_max=5000),
    "cifar100-lt": dict(folder="cifar-100-python", train=["train"], test=["test"], key="fine_labels",
                        classes=100, n_max=500),
}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _read_cifar_batches(folder: Path, files: list[str], key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for f in files:
        # The official CIFAR release is a pickle (torchvision reads it the same way).
        with open(folder / f, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry[key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _cifar(cfg: DataConfig) -> DataBundle:
    spec = CIFAR[cfg.name]
    root = Path(cfg.root).expanduser()
    folder = root / spec["folder"]
    missing = [f for f in spec["train"] + spec["test"] if not (folder / f).is_file()]
    if missing and cfg.download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if cfg.name == "cifar10-lt" else torchvision.datasets.CIFAR100
        cls(str(root), train=True, download=True)
        missing = [f for f in spec["train"] + spec["test"] if not (folder / f).is_file()]
    if missing:
        raise LtrayError(
            f"{cfg.name}: {folder} lacks {', '.join(missing)}. Get the python version of CIFAR from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and unpack it into {root} (so that {folder} "
            f"exists), or set data.download=True to let torchvision download it."
        )
    try:
        x, y = _read_cifar_batches(folder, spec["train"], spec["key"])
        xt, yt = _read_cifar_batches(folder, spec["test"], spec["key"])
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
        raise LtrayError(f"{cfg.name}: {folder} is not a CIFAR python-version folder ({e})") from e
    C = spec["classes"]
    if y.size and y.max() >= C:
        raise LtrayError(f"{cfg.name}: label {y.max()} out of range for {C} classes in {folder}")
    n_max = min(spec["n_max"], int(np.bincount(y, minlength=C).min()) - cfg.val_per_class)
    train, val = lt_train_val(y, n_max, C, cfg)
    t = torch.from_numpy
    return DataBundle(
        name=cfg.name, num_classes=C,
        train=Split(t(y[train]), t(x[train])), val=Split(t(y[val]), t(x[val])), test=Split(t(yt), t(xt)),
        subset_hash=subset_hash(cfg.name, train, val, np.arange(yt.size)),
        mean=CIFAR_MEAN, std=CIFAR_STD, augment="crop_flip", image_size=32,
    )


def _check(cfg: DataConfig) -> None:
    folder = Path(cfg.root).expanduser() / CIFAR[cfg.name]["folder"]
    if not cfg.download and not folder.is_dir():
        raise LtrayError(
            f"{cfg.name}: {folder} does not exist. Get the python version of CIFAR from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html into {cfg.root}, set data.download=true, "
            f"or run the same study on the embedded data: --set data.name=digits-lt model.name=cnn-small")


for _name, _spec in CIFAR.items():
    register(Dataset(name=_name, summary=f"CIFAR-{_spec['classes']}-LT (n_max {_spec['n_max']})", load=_cifar,
                     classes=_spec["classes"], check=_check,
                     max_rho=lambda cfg, n=_spec["n_max"]: n - cfg.val_per_class))
