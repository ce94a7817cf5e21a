"""A run's state from epoch to epoch and its checkpoint file: ``TrainState`` is the one place
that knows the checkpoint's keys; a checkpoint loads with ``weights_only=True``, so a file that
is not plain tensors and containers is refused."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ltray.errors import LtrayError

CHECKPOINT_FILE = "state.pt"


@dataclass
class TrainState:
    """What a run carries from epoch to epoch, and what its checkpoint holds. The one place that
    knows the checkpoint keys (``ltray.sweep.stages`` writes the same keys, read back with read_checkpoint)."""

    KEYS: ClassVar[tuple[str, ...]] = ("model", "optimizer", "epoch", "best_val", "best_epoch", "history", "best_state")

    net: torch.nn.Module
    """The model being trained (never the DDP or compiled wrapper)."""
    opt: torch.optim.Optimizer
    """Its optimiser."""
    epoch: int = 0
    """The next epoch to train; a checkpoint stores the last one done (epoch - 1)."""
    best_val: float = -1.0
    """Best finite validation balanced accuracy so far (-1: none yet)."""
    best_epoch: int = -1
    """The epoch that reached it (-1: none yet)."""
    history: list[dict] = field(default_factory=list)
    """One row per epoch trained, the checkpoint's rows first on resume."""
    best_state: dict | None = None
    """CPU copy of the best epoch's weights."""

    def to_checkpoint(self) -> dict:
        # keys in the order checkpoints always had them
        return {"model": self.net.state_dict(), "optimizer": self.opt.state_dict(), "epoch": self.epoch - 1,
                "best_val": self.best_val, "best_epoch": self.best_epoch, "history": self.history,
                "best_state": self.best_state}

    @classmethod
    def from_checkpoint(cls, ck: dict, net: torch.nn.Module, opt: torch.optim.Optimizer) -> TrainState:
        """Load ``ck`` (from :func:`load_checkpoint`) into ``net`` and ``opt``; training goes on
        with the epoch after the checkpoint's."""
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        return cls(net, opt, ck["epoch"] + 1, ck["best_val"], ck["best_epoch"], list(ck["history"]), ck["best_state"])

    def record(self, row: dict) -> None:
        """Add an epoch's history row; keep the weights when its validation balanced accuracy
        is finite and the best so far."""
        self.history.append(row)
        self.epoch = row["epoch"] + 1
        if math.isfinite(row["val_bal_acc"]) and row["val_bal_acc"] > self.best_val:
            self.best_val, self.best_epoch = row["val_bal_acc"], row["epoch"]
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}


def save_checkpoint(folder: str, state: dict) -> str:
    """Write ``state`` to ``folder/state.pt`` atomically (temporary name, then rename)."""
    path = os.path.join(folder, CHECKPOINT_FILE)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(folder_or_file: str) -> dict:
    """Load a checkpoint with ``weights_only=True``: a file that is not plain tensors and
    containers (a pickle with a payload, say) is refused with an LtrayError."""
    path = folder_or_file
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_FILE)
    if not os.path.isfile(path):
        raise LtrayError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        return read_checkpoint(f, path)


def read_checkpoint(source, name: str) -> dict:
    """:func:`load_checkpoint` of an open file or a BytesIO (a checkpoint read from a URI)."""
    try:
        ck = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise LtrayError(f"{name} is not an ltray checkpoint (refused to load: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from e
    need = set(TrainState.KEYS)
    if not isinstance(ck, dict) or not need <= set(ck):
        raise LtrayError(f"{name} is not an ltray checkpoint (missing {sorted(need - set(ck) if isinstance(ck, dict) else need)})")
    return ck
