"""Datasets by name, each split into long-tailed train / balanced validation / test.

In-memory datasets (digits-lt, cifar*-lt, gaussian-lt) keep images as one uint8 tensor so the
training loop samples batches by index and augments them with batched tensor ops on the
model's device. ``list-file`` datasets (ImageNet-LT, Places-LT, iNaturalist) read images with
PIL through a DataLoader.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ltray.core.longtail import lt_counts, lt_indices, split_validation
from ltray.errors import LtrayError

DATASETS = ("digits-lt", "cifar10-lt", "cifar100-lt", "list-file", "gaussian-lt")


@dataclass(frozen=True)
class DataConfig:
    """Which data to train on and how to cut it."""

    name: str = "digits-lt"
    """Dataset: digits-lt, cifar10-lt, cifar100-lt, list-file or gaussian-lt."""
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


def _progress(it, total: int, desc: str):
    """A plain text progress bar on stderr for data preparation (no extra dependency)."""
    step = max(total // 20, 1)
    for i, item in enumerate(it, 1):
        if i % step == 0 or i == total:
            filled = int(20 * i / total)
            print(f"\r{desc} [{'#' * filled}{'.' * (20 - filled)}] {i}/{total}", end="", file=sys.stderr)
        yield item
    print(file=sys.stderr)


DEFAULT_VAL_PER_CLASS = 20
# what a dataset has room for: digits-lt's rarest digit has 174 images, 40 test + 115 train + 15 val + 4
MAX_VAL_PER_CLASS = {"digits-lt": 15}


def resolve(cfg: DataConfig) -> DataConfig:
    """``cfg`` with dataset defaults made explicit (``val_per_class=0`` -> the real number), so
    that what a study records is what it used; a value the dataset cannot hold is refused."""
    most = MAX_VAL_PER_CLASS.get(cfg.name)
    n = cfg.val_per_class or (most or DEFAULT_VAL_PER_CLASS)
    if n < 1:
        raise LtrayError(f"data.val_per_class must be >= 1 (or 0 for the dataset's default), got {cfg.val_per_class}")
    if most is not None and n > most:
        raise LtrayError(f"data.val_per_class={n}: {cfg.name} has room for at most {most} validation images per "
                         f"class; set data.val_per_class to {most} or less (0 = {most})")
    return replace(cfg, val_per_class=n) if n != cfg.val_per_class else cfg


def _lt_train_val(labels: np.ndarray, n_max: int, C: int, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Long-tailed train indices, then a balanced validation set from the images left out."""
    counts = list(cfg.counts) if cfg.counts else lt_counts(n_max, C, cfg.rho)
    if len(counts) != C or min(counts) < 1:
        raise LtrayError(f"data.counts needs {C} positive counts, one per class; got {len(counts)}: {counts}")
    train = lt_indices(labels, counts, cfg.subset_seed)
    left = np.setdiff1d(np.arange(labels.size), train)
    _, val_pos = split_validation(labels[left], cfg.val_per_class, cfg.subset_seed + 1)
    return train, left[val_pos]


# ---------------------------------------------------------------- digits-lt
DIGITS_TEST_PER_CLASS = 40
DIGITS_N_MAX = 115  # the rarest digit has 174 images: 40 test + 15 validation + 115 train + 4 spare


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
    tr, va = _lt_train_val(y[pool], DIGITS_N_MAX, 10, DataConfig(rho=cfg.rho, val_per_class=cfg.val_per_class,
                                                                    subset_seed=cfg.subset_seed, counts=cfg.counts))
    train, val = pool[tr], pool[va]
    t = torch.from_numpy
    return DataBundle(
        name="digits-lt", num_classes=10,
        train=Split(t(y[train]), t(x[train])), val=Split(t(y[val]), t(x[val])), test=Split(t(y[test]), t(x[test])),
        subset_hash=subset_hash("digits-lt", train, val, test),
        mean=(0.33,), std=(0.38,), augment="crop", image_size=8,
    )


# ---------------------------------------------------------------- CIFAR
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
    train, val = _lt_train_val(y, n_max, C, cfg)
    t = torch.from_numpy
    return DataBundle(
        name=cfg.name, num_classes=C,
        train=Split(t(y[train]), t(x[train])), val=Split(t(y[val]), t(x[val])), test=Split(t(yt), t(xt)),
        subset_hash=subset_hash(cfg.name, train, val, np.arange(yt.size)),
        mean=CIFAR_MEAN, std=CIFAR_STD, augment="crop_flip", image_size=32,
    )


# ---------------------------------------------------------------- list files (ImageNet-LT & co)
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


# ---------------------------------------------------------------- gaussian-lt (LA paper, Fig. 2)
GAUSS_DIM = 2
GAUSS_SHIFT = 1.0  # class means at +-1 on every axis; unit variance


def gaussian_bayes_balanced_error(dim: int = GAUSS_DIM, shift: float = GAUSS_SHIFT) -> float:
    """Bayes-optimal balanced error of two unit-variance Gaussians at +-shift*1_d:
    the balanced-optimal rule thresholds at the midpoint, error ``Phi(-||mu1 - mu0|| / 2)``."""
    half_gap = shift * math.sqrt(dim)
    return 0.5 * math.erfc(half_gap / math.sqrt(2.0))


def _gaussian(cfg: DataConfig, n_train: int = 10000, n_eval: int = 10000) -> DataBundle:
    rng = np.random.default_rng(cfg.subset_seed)
    p_minor = 1.0 / (1.0 + cfg.rho)  # n_major / n_minor = rho

    def draw(n: int, balanced: bool):
        y = (np.arange(n) % 2) if balanced else (rng.random(n) < p_minor).astype(np.int64)
        x = rng.standard_normal((n, GAUSS_DIM)) + np.where(y[:, None] == 1, GAUSS_SHIFT, -GAUSS_SHIFT)
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))

    xtr, ytr = draw(n_train, False)
    if int(ytr.min()) == int(ytr.max()):
        raise LtrayError(f"gaussian-lt: rho={cfg.rho} left no minority example in {n_train} draws")
    xv, yv = draw(2 * cfg.val_per_class, True)
    xt, yt = draw(n_eval, True)
    return DataBundle(
        name="gaussian-lt", num_classes=2,
        train=Split(ytr, xtr), val=Split(yv, xv), test=Split(yt, xt),
        subset_hash=subset_hash(f"gaussian-lt:{cfg.rho}:{cfg.subset_seed}", ytr.numpy()),
        augment="none", extra={"bayes_balanced_error": gaussian_bayes_balanced_error()},
    )


def load_data(cfg: DataConfig) -> DataBundle:
    """Build the train / validation / test splits of ``cfg.name``; raises LtrayError on bad input."""
    if cfg.name not in DATASETS:
        raise LtrayError(f"unknown dataset {cfg.name!r}; choose one of {', '.join(DATASETS)}")
    if not cfg.rho >= 1:
        raise LtrayError(f"data.rho must be >= 1 (n_max / n_min), got {cfg.rho!r}")
    cfg = resolve(cfg)
    if cfg.name == "digits-lt":
        return _digits(cfg)
    if cfg.name in CIFAR:
        return _cifar(cfg)
    if cfg.name == "list-file":
        return _list_file(cfg)
    return _gaussian(cfg)


# ---------------------------------------------------------------- batches on tensors
def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (zero padding) and, for "crop_flip", horizontal flip, batched; x (N, C, H, W)."""
    if kind == "none" or x.ndim != 4:
        return x
    pad = 4 if kind == "crop_flip" else 1
    N, C, H, W = x.shape
    dev = x.device
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (2, N), generator=generator, device="cpu").to(dev)
    rows = (torch.arange(H, device=dev)[None, :] + off[0][:, None])  # (N, H)
    cols = (torch.arange(W, device=dev)[None, :] + off[1][:, None])  # (N, W)
    n = torch.arange(N, device=dev)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if kind == "crop_flip":
        flip = (torch.rand(N, generator=generator, device="cpu") < 0.5).to(dev)
        out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out.contiguous()


def to_float(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> normalised float32; float features pass through."""
    if x.dtype != torch.uint8:
        return x.float()
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


class ImageList(torch.utils.data.Dataset):
    """PIL images from a list of paths; training crops RandomResizedCrop + flip, eval centre crop."""

    def __init__(self, paths: list[str], labels: torch.Tensor, size: int, train: bool, mean, std):
        import torchvision.transforms as T

        self.paths, self.labels = paths, labels
        norm = T.Normalize(mean, std)
        if train:
            self.tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
        else:
            self.tf = T.Compose([T.Resize(int(size * 256 / 224)), T.CenterCrop(size), T.ToTensor(), norm])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.tf(im.convert("RGB")), self.labels[i]
