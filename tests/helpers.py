"""Small on-disk datasets in the real formats (CIFAR python pickles, list files with JPEGs)."""

import pickle
from pathlib import Path

import numpy as np


def make_fake_cifar(root: Path, classes: int = 10, per_class_train: int = 60, per_class_test: int = 10, seed: int = 0) -> Path:
    """Write CIFAR-10 (or CIFAR-100 with classes=100) batches in the official python format."""
    rng = np.random.default_rng(seed)
    def batch(n_per, key):
        y = np.repeat(np.arange(classes), n_per)
        rng.shuffle(y)
        # class-dependent colour so a model can learn something
        x = (rng.integers(0, 60, (y.size, 3, 32, 32)) + (y * (190 // classes))[:, None, None, None]).astype(np.uint8)
        return {"data": x.reshape(y.size, 3072), key: y.tolist(), "batch_label": "fake"}
    if classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        per = per_class_train // 5
        for i in range(1, 6):
            with open(folder / f"data_batch_{i}", "wb") as f:
                pickle.dump(batch(per, "labels"), f)
        with open(folder / "test_batch", "wb") as f:
            pickle.dump(batch(per_class_test, "labels"), f)
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        for name, n in (("train", per_class_train), ("test", per_class_test)):
            b = batch(n, "fine_labels")
            b["coarse_labels"] = [v // 5 for v in b["fine_labels"]]
            with open(folder / name, "wb") as f:
                pickle.dump(b, f)
    return folder


def make_list_dataset(root: Path, counts=(12, 6, 3), val=2, test=3, size=24) -> dict:
    """Tiny JPEGs under root/images and ImageNet-LT style list files; returns the list names."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lists = {}
    for split, per in (("train", counts), ("val", [val] * len(counts)), ("test", [test] * len(counts))):
        lines = []
        for c, n in enumerate(per):
            for i in range(n):
                rel = f"images/{split}_{c}_{i}.jpg"
                arr = (rng.integers(0, 50, (size, size, 3)) + 60 * c).astype(np.uint8)
                Image.fromarray(arr).save(root / rel, quality=90)
                lines.append(f"{rel} {c}")
        (root / f"LT_{split}.txt").write_text("\n".join(lines) + "\n")
        lists[f"{split}_list"] = f"LT_{split}.txt"
    return lists
