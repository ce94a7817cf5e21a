"""The training recipe: optimiser, schedule, batches. One frozen group of an experiment
(``Experiment.train``), checked by its own ``validate``."""

from __future__ import annotations

from dataclasses import dataclass

from ltray.errors import LtrayError


@dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, schedule, batches."""

    epochs: int = 200
    """Training epochs."""
    batch_size: int = 128
    """Global batch size (split across DDP workers)."""
    lr: float = 0.1
    """Peak learning rate for SGD, reached after the warm-up, at this batch size."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 2e-4
    """L2 weight decay."""
    warmup_epochs: int = 5
    """Epochs of linear learning-rate warm-up."""
    schedule: str = "multistep"
    """Learning-rate schedule after warm-up: "multistep" or "cosine"."""
    milestones: tuple[float, ...] = (0.8, 0.9)
    """multistep: fractions of the epochs at which lr is multiplied by gamma (LDAM: 160, 180 of 200)."""
    gamma: float = 0.1
    """multistep: factor applied at each milestone."""
    sampler: str = "random"
    """Batch sampling: "random" (instance-balanced) or "balanced" (class-balanced)."""
    augment: bool = True
    """Random crop (+ flip for 32x32 images) on the training batches."""
    loader_workers: int = 4
    """DataLoader workers for list-file datasets (in-memory data uses none)."""
    mixup_alpha: float = 0.0
    """mixup on top of any loss: Beta(alpha, alpha) mixing of image pairs and their labels (0 = off)."""
    bf16: bool = False
    """bf16 autocast for forward and loss (GPUs; off by default on CPU)."""
    channels_last: bool = False
    """channels_last memory format for model and batches (GPUs)."""
    compile: bool = False
    """torch.compile the model once per process (reused across the trial's epochs)."""
    resample_from: float = 1.0
    """Deferred re-sampling (DRS): the fraction of the epochs after which batches are class-balanced
    (Cao et al.: 0.8); 1 = never. sampler=balanced balances from the start."""
    track_test: bool = False
    """Also evaluate the test set after every epoch, for the protocol-gap report only (what choosing
    the epoch and tau on test would have published); selection never reads it. Costs one test pass
    an epoch."""

    def validate(self) -> None:
        if not 1 <= self.epochs <= 100_000:
            raise LtrayError(f"train.epochs must be in [1, 100000], got {self.epochs}")
        if not 1 <= self.batch_size <= 2**20:
            raise LtrayError(f"train.batch_size must be in [1, {2**20}], got {self.batch_size}")
        if not self.lr > 0:
            raise LtrayError(f"train.lr must be > 0, got {self.lr}")
        if self.schedule not in ("multistep", "cosine"):
            raise LtrayError(f"train.schedule must be 'multistep' or 'cosine', got {self.schedule!r}")
        if self.sampler not in ("random", "balanced"):
            raise LtrayError(f"train.sampler must be 'random' or 'balanced', got {self.sampler!r}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise LtrayError(f"train.milestones are fractions of the epochs in (0, 1), got {self.milestones}")
        if self.warmup_epochs < 0:
            raise LtrayError(f"train.warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.mixup_alpha < 0:
            raise LtrayError(f"train.mixup_alpha must be >= 0, got {self.mixup_alpha}")
        if not 0 <= self.momentum < 1:
            raise LtrayError(f"train.momentum must be in [0, 1), got {self.momentum}")
        if not self.weight_decay >= 0:
            raise LtrayError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 < self.gamma <= 1:
            raise LtrayError(f"train.gamma must be in (0, 1], got {self.gamma}")
        if not 0 < self.resample_from <= 1:
            raise LtrayError(f"train.resample_from must be in (0, 1], got {self.resample_from}")
        if self.loader_workers < 0:
            raise LtrayError(f"train.loader_workers must be >= 0, got {self.loader_workers}")
