"""Datasets by name, each split into long-tailed train / balanced validation / test.

In-memory datasets (digits-lt, cifar*-lt, gaussian-lt) keep images as one uint8 tensor so the
training loop samples batches by index and augments them with batched tensor ops on the
model's device. ``list-file`` datasets (ImageNet-LT, Places-LT, iNaturalist) read images with
PIL through a DataLoader.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ltray.core.longtail import lt_counts, lt_indices, split_validation
from ltray.errors import LtrayError



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


def resolve(cfg: DataConfig) -> DataConfig:
    """``cfg`` with dataset defaults made explicit (``val_per_class=0`` -> the real number), so
    that what a study records is what it used; a value the dataset cannot hold is refused."""
    most = datasets.get_dataset(cfg.name).max_val_per_class or None
    n = cfg.val_per_class or (most or DEFAULT_VAL_PER_CLASS)
    if n < 1:
        raise LtrayError(f"data.val_per_class must be >= 1 (or 0 for the dataset's default), got {cfg.val_per_class}")
    if most is not None and n > most:
        raise LtrayError(f"data.val_per_class={n}: {cfg.name} has room for at most {most} validation images per "
                         f"class; set data.val_per_class to {most} or less (0 = {most})")
    return replace(cfg, val_per_class=n) if n != cfg.val_per_class else cfg


def lt_train_val(labels: np.ndarray, n_max: int, C: int, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Long-tailed train indices, then a balanced validation set from the images left out."""
    counts = list(cfg.counts) if cfg.counts else lt_counts(n_max, C, cfg.rho)
    if len(counts) != C or min(counts) < 1:
        raise LtrayError(f"data.counts needs {C} positive counts, one per class; got {len(counts)}: {counts}")
    train = lt_indices(labels, counts, cfg.subset_seed)
    left = np.setdiff1d(np.arange(labels.size), train)
    _, val_pos = split_validation(labels[left], cfg.val_per_class, cfg.subset_seed + 1)
    return train, left[val_pos]


def load_data(cfg: DataConfig) -> DataBundle:
    """Build the train / validation / test splits of ``cfg.name``; raises LtrayError on bad input."""
    dataset = datasets.get_dataset(cfg.name)
    if not cfg.rho >= 1:
        raise LtrayError(f"data.rho must be >= 1 (n_max / n_min), got {cfg.rho!r}")
    return dataset.load(resolve(cfg))


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


from ltray import datasets  # noqa: E402  (registers the datasets; they build on the types above)
