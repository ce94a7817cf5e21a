"""list-file: ImageNet-LT / Places-LT / iNaturalist from their ``path label`` list files (images via PIL)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ltray.datasets.base import DataBundle, DataConfig, Split, subset_hash
from ltray.datasets.registry import Dataset, register
from ltray.errors import LtrayError

def read_list_file(root: Path, list_path: str) -> tuple[list[str], np.ndarray]:
    """Parse a ``path label`` list file; paths resolve relative to root."""
    p = Path(list_path).expanduser()
    if not p.is_absolute():
        p = root / p
    if not p.is_file():
        raise LtrayError(f"list file {p} does not exist (lines of 'relative/path.jpg label')")
    paths, labels = [], []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise LtrayError(f"{p}:{n}: expected 'path label', got {line!r}")
        paths.append(str(root / parts[0]))
        labels.append(int(parts[1]))
    if not labels:
        raise LtrayError(f"list file {p} is empty")
    return paths, np.asarray(labels, dtype=np.int64)


def _list_file(cfg: DataConfig) -> DataBundle:
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise LtrayError(f"list-file: data root {root} does not exist")
    for field_name in ("train_list", "val_list", "test_list"):
        if not getattr(cfg, field_name):
            raise LtrayError(f"list-file needs data.{field_name} (e.g. ImageNet_LT_train.txt)")
    splits = {k: read_list_file(root, getattr(cfg, f"{k}_list")) for k in ("train", "val", "test")}
    C = int(max(s[1].max() for s in splits.values())) + 1
    for k, (paths, labels) in splits.items():
        if labels.min() < 0:
            raise LtrayError(f"list-file {k}: negative label")
        missing = next((p for p in paths if not os.path.isfile(p)), None)
        if missing:
            raise LtrayError(f"list-file {k}: image {missing} does not exist")
    t = torch.from_numpy
    return DataBundle(
        name="list-file", num_classes=C,
        train=Split(t(splits["train"][1]), paths=splits["train"][0]),
        val=Split(t(splits["val"][1]), paths=splits["val"][0]),
        test=Split(t(splits["test"][1]), paths=splits["test"][0]),
        subset_hash=subset_hash("list-file:" + "|".join(p for s in splits.values() for p in s[0]),
                                *(s[1] for s in splits.values())),
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), augment="none", image_size=cfg.image_size,
    )


def _check(cfg: DataConfig) -> None:
    if not Path(cfg.root).expanduser().is_dir():
        raise LtrayError(f"list-file: data root {cfg.root} does not exist")


DATASET = register(Dataset(
    name="list-file", summary="ImageNet-LT / Places-LT / iNaturalist list files (train, val, test lists)",
    load=_list_file, square_images=False, check=_check))
