"""The training loop as a plain function. No Ray inside: progress goes out through a
``report(metrics, checkpoint_dir)`` callable, so Ray Train, a test's list or the CLI can listen.

Run one method from the command line::

    python -m ltray.train --data digits-lt --method balanced_softmax --epochs 30
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterable, Iterator, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ltray.core.metrics import VAL_METRICS, per_class_accuracy, shot_accuracy
from ltray.data import DataBundle, DataConfig, ImageList, augment_batch, load_data, to_float
from ltray.errors import LtrayError
from ltray.evaluate import tau_normalized_results
from ltray.core.posthoc import tau_curve
from ltray.methods import LossFn, Method, get_method, logits_are_balanced, method_names
from ltray.models import MODELS, build_model

CHECKPOINT_FILE = "state.pt"
Report = Callable[[dict, str | None], None]


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
        if self.epochs < 1:
            raise LtrayError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise LtrayError(f"train.batch_size must be >= 1, got {self.batch_size}")
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


def lr_at(recipe: Recipe, epoch: int) -> float:
    """Learning rate of an epoch: linear warm-up, then multistep or cosine (per epoch, like LDAM)."""
    if epoch < recipe.warmup_epochs:
        return recipe.lr * (epoch + 1) / recipe.warmup_epochs
    if recipe.schedule == "cosine":
        span = max(recipe.epochs - recipe.warmup_epochs, 1)
        return 0.5 * recipe.lr * (1 + math.cos(math.pi * (epoch - recipe.warmup_epochs) / span))
    passed = sum(epoch >= int(round(m * recipe.epochs)) for m in recipe.milestones)
    return recipe.lr * recipe.gamma**passed


class TrainingFailed(RuntimeError):
    """A trial that cannot produce a result: it is recorded as failed, with this reason."""


class TrainingDiverged(TrainingFailed):
    """The loss became NaN or infinite (e.g. an absurd learning rate)."""


class NoSelectableEpoch(TrainingFailed):
    """No epoch had a finite validation balanced accuracy, so there is no best epoch to keep."""


def selected_metrics(history: list[dict], best_epoch: int, epochs: int) -> dict:
    """What a report tells Tune after an epoch: ``VAL_METRICS`` of the best epoch so far (chosen
    on ``val_bal_acc``), so that a trial stopped early (ASHA) or finished is ranked on the same
    number the tables store; this epoch's own values as ``epoch_val_*``; and ``progress``, the
    fraction of this trial's epochs done (ASHA's clock: a 10-epoch cRT stage and a 200-epoch
    run are judged at the same fraction). The last epoch carries no ``progress``: ASHA ignores
    a result without its clock, so it can never stop a trial that is writing its tables; the
    trial's stored result follows with progress 1."""
    row = history[-1]
    best = next((h for h in history if h["epoch"] == best_epoch), None)
    out = {f"epoch_{k}": row[k] for k in VAL_METRICS}
    out.update({k: (best[k] if best is not None else float("nan")) for k in VAL_METRICS})
    out |= {"epoch": row["epoch"], "selected_epoch": best_epoch, "train_loss": row["train_loss"], "lr": row["lr"]}
    if row["epoch"] + 1 < epochs:
        out["progress"] = (row["epoch"] + 1) / epochs
    return out


@dataclass
class FitResult:
    """What one training run leaves: logits of the best epoch (chosen on validation) and metrics."""

    val_logits: np.ndarray  # (N_val, C) float32
    val_labels: np.ndarray  # (N_val,)
    test_logits: np.ndarray  # (N_test, C)
    test_labels: np.ndarray  # (N_test,)
    train_counts: np.ndarray  # (C,)
    best_epoch: int
    history: list[dict]
    metrics: dict
    state_dict: dict = field(repr=False, default_factory=dict)
    taunorm: dict = field(default_factory=dict)  # tau-normalised classifier results (linear heads)
    start_epoch: int = 0  # > 0 when the run resumed from a checkpoint


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _collective_device(device: torch.device) -> torch.device | str:
    return device if device.type == "cuda" else "cpu"  # NCCL wants CUDA tensors, gloo CPU ones


def balanced_from(recipe: Recipe) -> int:
    """The first epoch with class-balanced batches: 0 with sampler=balanced, the resample_from
    fraction of the epochs with deferred re-sampling (DRS), else never (the epoch count)."""
    if recipe.sampler == "balanced":
        return 0
    return int(round(recipe.resample_from * recipe.epochs)) if recipe.resample_from < 1 else recipe.epochs


def _epoch_indices(labels: np.ndarray, recipe: Recipe, gen: np.random.Generator, epoch: int = 0) -> np.ndarray:
    """One epoch of global sample indices (same on every rank: each takes its own shard)."""
    n = labels.size
    if epoch < balanced_from(recipe):
        return gen.permutation(n)
    # class-balanced: pick a class uniformly, then an image of it uniformly (cRT, Kang et al.)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    cls = gen.integers(0, len(by_class), n)
    pick = gen.random(n)
    return np.array([by_class[c][int(p * by_class[c].size)] for c, p in zip(cls, pick)], dtype=np.int64)


@torch.no_grad()
def predict(model: torch.nn.Module, data: DataBundle, split: str, device: torch.device, batch: int = 1024,
            workers: int = 0, fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
    """Model outputs (N, C) on a split, in eval mode, float32 numpy. ``fn`` runs on each batch in
    place of ``model`` (``model.features`` gives features (N, D)); ``model`` is still put in eval mode."""
    model.eval()
    fn = model if fn is None else fn
    s = getattr(data, split)
    outs = []
    if data.in_memory:
        for i in range(0, len(s), batch):
            xb = to_float(s.x[i:i + batch].to(device), data.mean, data.std)
            outs.append(fn(xb).float().cpu())
    else:
        ds = ImageList(s.paths, s.y, data.image_size, False, data.mean, data.std)
        for xb, _ in torch.utils.data.DataLoader(ds, batch_size=min(batch, 256), num_workers=workers):
            outs.append(fn(xb.to(device)).float().cpu())
    return torch.cat(outs).numpy() if outs else np.zeros((0, data.num_classes), np.float32)


def summarize(logits: np.ndarray, labels: np.ndarray, train_counts: np.ndarray) -> dict:
    """Balanced accuracy, per-shot accuracy and per-class accuracy of logits on a split."""
    C = train_counts.size
    pc = per_class_accuracy(logits, labels, C)
    return {"bal_acc": float(np.nanmean(pc)), **shot_accuracy(pc, train_counts), "per_class": pc}


@dataclass
class TrainState:
    """What a run carries from epoch to epoch, and what its checkpoint holds. The one place that
    knows the checkpoint keys (``ltray.stages`` writes the same keys, read back with read_checkpoint)."""

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


@dataclass(frozen=True)
class ModelStart:
    """Which model a run trains and where it starts from (fit's model arguments together)."""

    name: str = "cnn-small"
    """Model name (ltray.models.MODELS)."""
    init_backbone: dict | None = None
    """Backbone state dict to start from, with a fresh classifier (SSP, cRT)."""
    freeze_backbone: bool = False
    """Train the classifier only (cRT)."""
    teacher: torch.nn.Module | None = None
    """The trained model a distillation method's loss needs (DiVE)."""
    resume_from: str | None = None
    """Checkpoint folder or file to go on from: weights, optimiser, history, best epoch."""
    init_head: dict | None = None
    """A trained linear classifier's state: the head starts from it (an LWS head keeps it frozen)."""


@dataclass
class Run:
    """What one training run sets up once (:func:`build_run`) and every epoch uses."""

    net: torch.nn.Module
    """The model: evaluated and checkpointed."""
    train_net: torch.nn.Module
    """What the training steps call: ``net``, wrapped in DDP and/or compiled."""
    loss_fn: LossFn
    """(outputs (B, C), labels (B,), epoch, inputs) -> scalar loss."""
    opt: torch.optim.Optimizer
    """SGD over the trainable parameters."""
    recipe: Recipe
    """The effective recipe: batch size, augmentation, bf16, channels_last, loader workers."""
    device: torch.device
    """Where the steps run."""
    x_train: torch.Tensor | None = None
    """In-memory training inputs on the device, uint8 (N, C, H, W) or float (N, D); None for file lists."""
    y_train: torch.Tensor | None = None
    """In-memory training labels (N,) on the device."""
    rank: int = 0
    """This process's DDP rank."""
    world: int = 1
    """DDP ranks (1: trains alone)."""
    scale: float = 1.0
    """Multiplier from model outputs to logits (LDAM's cosine scale s)."""
    mix_alpha: float = 0.0
    """mixup: lambda ~ Beta(alpha, alpha) per step (0 = off)."""
    mix_weights: Callable | None = None
    """Remix-style re-labelling of mixed images: (lambda, y, partner y) -> per-sample label weight (B,)."""
    after_step: Callable[[], None] | None = None
    """Called after every optimiser step (weight balancing's MaxNorm projection)."""
    freeze_backbone: bool = False
    """Keep the backbone in eval mode while training (cRT: frozen BatchNorm statistics too)."""
    balanced: bool = False
    """The logits carry no training prior (a balanced loss or sampler): post-hoc LA has nothing to divide out."""


def _setup_model(data: DataBundle, head: str, start: ModelStart, device: torch.device) -> torch.nn.Module:
    """The model on ``device``, from ``start.init_backbone`` if given, backbone frozen if asked."""
    in_ch, in_dim = data.input_shape
    net = build_model(start.name, data.num_classes, in_ch, head, in_dim).to(device)
    if start.init_backbone is not None:
        net.backbone.load_state_dict(start.init_backbone)
    if start.freeze_backbone:
        for p in net.backbone.parameters():
            p.requires_grad_(False)
    if start.init_head is not None:
        if hasattr(net.head, "linear"):  # LWS: the trained classifier stays fixed under the scales
            net.head.linear.load_state_dict(start.init_head)
            for p in net.head.linear.parameters():
                p.requires_grad_(False)
        else:  # a linear head starts from the trained classifier and trains on (weight balancing)
            net.head.load_state_dict(start.init_head)
    return net


def _wrap(net: torch.nn.Module, recipe: Recipe, device: torch.device, world: int) -> torch.nn.Module:
    """What the training steps call: ``net`` (channels_last in place), in DDP across ranks, compiled."""
    if recipe.channels_last:
        net.to(memory_format=torch.channels_last)
    train_net = net
    if world > 1:
        train_net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if recipe.compile:
        train_net = torch.compile(train_net)  # compiled once; every epoch of this run reuses it
    return train_net


def build_run(data: DataBundle, method: Method, hp: dict, recipe: Recipe, start: ModelStart, device: torch.device,
              rank: int = 0, world: int = 1) -> tuple[Run, TrainState]:
    """Set up one run: the model, ``method``'s loss (``hp``: its full hyperparameters), SGD, the
    state to start from (``start.resume_from``'s, or a fresh one), then the training wrapper."""
    counts = data.train_counts
    if (counts == 0).any():
        raise LtrayError(f"{data.name}: classes {np.flatnonzero(counts == 0).tolist()} have no training image")
    counts_t = torch.as_tensor(counts, dtype=torch.float32, device=device)
    net = _setup_model(data, method.head, start, device)
    if method.teacher and start.teacher is None:
        raise LtrayError(f"method {method.name} needs a trained {method.teacher} teacher (ltray.stages.get_trained)")
    teacher = start.teacher.to(device) if start.teacher is not None else None
    loss_fn = method.make_loss(counts_t, recipe.epochs, hp, teacher)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    # restored before wrapping: DDP then starts every rank from the checkpoint's weights
    state = TrainState.from_checkpoint(load_checkpoint(start.resume_from), net, opt) if start.resume_from \
        else TrainState(net, opt)
    run = Run(net=net, train_net=_wrap(net, recipe, device, world), loss_fn=loss_fn, opt=opt, recipe=recipe,
              device=device, x_train=data.train.x.to(device) if data.in_memory else None,
              y_train=data.train.y.to(device), rank=rank, world=world, scale=method.logit_scale(hp),
              mix_alpha=max(recipe.mixup_alpha, method.mixup(hp)), freeze_backbone=start.freeze_backbone,
              mix_weights=method.mix_weights(hp, counts_t) if method.mix_weights else None,
              after_step=(lambda: method.after_step(net, hp)) if method.after_step else None,
              balanced=logits_are_balanced(method, recipe))
    return run, state


def batches(data: DataBundle, run: Run, order: np.ndarray, tgen: torch.Generator
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of training batches on the device: (inputs (B, ...), labels (B,)), this rank's
    shard of each global batch of ``order`` (global sample indices). In-memory images are
    augmented with ``tgen``, one batch per ``next``, so their draws interleave with the steps'
    mixup draws from ``tgen`` as they always did; file lists go through a DataLoader."""
    recipe, device = run.recipe, run.device
    steps = math.ceil(order.size / recipe.batch_size)
    if not data.in_memory:
        loader = _file_batches(data, order, recipe, run.rank, run.world, max(recipe.batch_size // run.world, 1))
        for _ in range(steps):
            xb, yb = next(loader)
            yield xb.to(device, non_blocking=True), yb.to(device)
        return
    aug = data.augment if recipe.augment else "none"
    fmt = torch.channels_last if recipe.channels_last else torch.contiguous_format
    for step in range(steps):
        glob = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
        idx = torch.from_numpy(glob[run.rank::run.world]).to(device)
        if idx.numel() == 0:
            idx = torch.from_numpy(glob[:1]).to(device)  # keep DDP ranks in step
        xb = to_float(augment_batch(run.x_train[idx], aug, tgen), data.mean, data.std)
        yield xb.contiguous(memory_format=fmt), run.y_train[idx]


def _file_batches(data: DataBundle, order: np.ndarray, recipe: Recipe, rank: int, world: int, local_bs: int):
    """Batches of a list-file dataset through a DataLoader over this rank's shard of the order."""
    mine = np.concatenate([order[i:i + recipe.batch_size][rank::world] for i in range(0, order.size, recipe.batch_size)])
    ds = ImageList(data.train.paths, data.train.y, data.image_size, recipe.augment, data.mean, data.std)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, mine.tolist()), batch_size=local_bs,
                                         num_workers=recipe.loader_workers, pin_memory=torch.cuda.is_available())
    return iter(loader)


class EpochStats(NamedTuple):
    """What one epoch of steps leaves (this rank's share)."""

    loss: float  # mean training loss per image
    images: int  # images trained on
    seconds: float  # wall-clock seconds of the steps


def _loss_step(run: Run, xb: torch.Tensor, yb: torch.Tensor, epoch: int, gen: np.random.Generator,
               tgen: torch.Generator) -> torch.Tensor:
    """The loss of one batch; with mixup, the mix of the two labels' losses on the mixed batch
    (lambda from ``gen``, the pairing from ``tgen``)."""
    if run.mix_alpha > 0:
        lam = float(gen.beta(run.mix_alpha, run.mix_alpha))
        perm = torch.randperm(yb.numel(), generator=tgen).to(run.device)
        xb = lam * xb + (1 - lam) * xb[perm]
        out = run.train_net(xb).float()
        if run.mix_weights is not None:  # each mixed image's label weight from the pair's class counts (Remix)
            w = run.mix_weights(lam, yb, yb[perm])
            return (w * F.cross_entropy(out, yb, reduction="none")
                    + (1 - w) * F.cross_entropy(out, yb[perm], reduction="none")).mean()
        return lam * run.loss_fn(out, yb, epoch, xb) + (1 - lam) * run.loss_fn(out, yb[perm], epoch, xb)
    return run.loss_fn(run.train_net(xb).float(), yb, epoch, xb)


def train_epoch(run: Run, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], epoch: int, lr: float,
                gen: np.random.Generator, tgen: torch.Generator) -> EpochStats:
    """One epoch of SGD steps at learning rate ``lr`` over ``batches`` (see :func:`batches`).
    Raises TrainingDiverged, on every DDP rank at once, when the epoch's loss is not finite."""
    for g in run.opt.param_groups:
        g["lr"] = lr
    run.train_net.train()
    if run.freeze_backbone:
        run.net.backbone.eval()  # frozen BatchNorm statistics too
    autocast = torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.recipe.bf16)
    t0, seen = time.perf_counter(), 0
    loss_sum_t = torch.zeros((), device=run.device)  # summed on the device: no host sync per step
    for xb, yb in batches:
        with autocast:
            loss = _loss_step(run, xb, yb, epoch, gen, tgen)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        if run.after_step is not None:
            run.after_step()
        seen += yb.numel()
        loss_sum_t += loss.detach().float() * yb.numel()
    loss_sum = float(loss_sum_t)  # the epoch's one sync; a NaN step makes the sum NaN
    finite = math.isfinite(loss_sum)
    if run.world > 1:  # every rank stops together, or the others would wait in the next collective
        flag = torch.tensor([float(finite)], device=_collective_device(run.device))
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        finite = bool(flag.item())
    if not finite:
        raise TrainingDiverged(f"loss became {loss_sum / max(seen, 1)} in epoch {epoch} (lr {lr:g})")
    return EpochStats(loss_sum / max(seen, 1), seen, time.perf_counter() - t0)


class ReportClock:
    """Which epochs are reported, and which of those carry a checkpoint, in seconds of
    ``time.monotonic``. An epoch carries a checkpoint when ``checkpoint_every_s`` have passed
    since the last one, and always the last epoch; it is reported when it carries one or when
    ``report_every_s`` have passed since the last report. Rank 0's clock decides for all ranks."""

    def __init__(self, report_every_s: float, checkpoint_every_s: float, epochs: int, device: torch.device,
                 world: int = 1):
        self.report_every_s, self.checkpoint_every_s, self.epochs = report_every_s, checkpoint_every_s, epochs
        self.device, self.world = device, world
        self.last_report = self.last_checkpoint = time.monotonic()

    def tick(self, epoch: int) -> tuple[bool, bool]:
        """(report, with a checkpoint) for ``epoch``, just trained; reads the clock once."""
        now = time.monotonic()
        due = now - self.last_checkpoint >= self.checkpoint_every_s or epoch == self.epochs - 1
        flags = [due, due or now - self.last_report >= self.report_every_s]
        if self.world > 1:  # every rank must agree, or DDP ranks would report differently
            flag = torch.tensor([float(f) for f in flags], device=_collective_device(self.device))
            dist.broadcast(flag, 0)
            flags = [bool(f) for f in flag.tolist()]
        due, send = flags
        if send:
            self.last_report = now
        if due:
            self.last_checkpoint = now
        return send, due


def _epoch_row(run: Run, data: DataBundle, epoch: int, lr: float, stats: EpochStats) -> dict:
    """An epoch's history row: training loss and speed, validation metrics of its weights."""
    val_logits = predict(run.net, data, "val", run.device, workers=run.recipe.loader_workers) * run.scale
    val = summarize(val_logits, data.val.y.numpy(), data.train_counts)
    dt = stats.seconds
    return {"epoch": epoch, "lr": lr, "train_loss": stats.loss,
            "val_bal_acc": val["bal_acc"], "val_many": val["many"], "val_medium": val["medium"],
            "val_few": val["few"], "images_per_s": stats.images * run.world / dt if dt > 0 else float("nan"),
            "epoch_s": dt, **_epoch_test(run, data)}


# the exact tau curve's range for the per-epoch test oracle (PosthocConfig.tau_max's default)
ORACLE_TAU_MAX = 3.0


def _epoch_test(run: Run, data: DataBundle) -> dict:
    """``recipe.track_test``: this epoch's test balanced and per-shot accuracy, and the best test
    balanced accuracy over post-hoc tau in [0, 3] (the exact curve, chosen on test): the numbers a
    repository that selects on test would publish. NaN when not tracked. Never used to select."""
    if not run.recipe.track_test:
        return {k: float("nan") for k in TEST_EPOCH_METRICS}
    counts = data.train_counts
    logits = predict(run.net, data, "test", run.device, workers=run.recipe.loader_workers) * run.scale
    y = data.test.y.numpy()
    test = summarize(logits, y, counts)
    prior = np.full(counts.size, 1.0 / counts.size) if run.balanced else counts / counts.sum()
    return {"test_bal_acc": test["bal_acc"], "test_many": test["many"], "test_medium": test["medium"],
            "test_few": test["few"], "test_bal_acc_tau_oracle": tau_curve(logits, y, prior, ORACLE_TAU_MAX).best}


TEST_EPOCH_METRICS = ("test_bal_acc", "test_many", "test_medium", "test_few", "test_bal_acc_tau_oracle")


def _report_epoch(report: Report, metrics: dict, state: TrainState, rank: int, with_checkpoint: bool) -> None:
    if rank != 0 or not with_checkpoint:
        report(metrics, None)
        return
    with tempfile.TemporaryDirectory(prefix="ltray-ckpt-") as d:
        save_checkpoint(d, state.to_checkpoint())
        report(metrics, d)  # the listener copies what it keeps before the folder goes


def fit(
    data: DataBundle,
    method: str | Method = "ce",
    hp: dict | None = None,
    model: str = "cnn-small",
    recipe: Recipe = Recipe(),
    seed: int = 0,
    device: str | torch.device = "cpu",
    report: Report | None = None,
    resume_from: str | None = None,
    log: Callable[[str], None] | None = None,
    teacher: torch.nn.Module | None = None,
    distributed: bool = True,
    init_backbone: dict | None = None,
    freeze_backbone: bool = False,
    init_head: dict | None = None,
    checkpoint_every_s: float = 0.0,
    report_every_s: float = 0.0,
    on_epoch: Callable[[list[dict]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` with ``method``'s loss; select the best epoch on validation.

    Every epoch computes validation metrics and calls ``report(metrics, checkpoint_dir)`` with
    :func:`selected_metrics` (the best epoch so far, this epoch, progress); rank 0
    passes a folder holding ``state.pt`` (resumable with ``resume_from``), other DDP ranks None.
    With ``checkpoint_every_s > 0`` an epoch carries a checkpoint only when that many seconds
    have passed since the last one (and always the last epoch): tiny epochs then do not pay
    a checkpoint upload each. With ``report_every_s > 0`` only epochs that many seconds apart
    (and every checkpoint epoch) are reported: under Ray Train each report can wait for the
    controller's next poll, so reporting 0.1 s epochs one by one would double a trial.
    ``on_epoch(history)`` sees every epoch (rank 0), with the whole history so far.
    Inside torch.distributed, the model is wrapped in DDP and each rank trains on its shard of
    every global batch (``distributed=False`` trains alone, e.g. a shared teacher stage).
    ``teacher`` is the trained model a distillation method (DiVE) needs. ``init_backbone``
    (a backbone state dict) starts from a trained or pre-trained backbone with a fresh
    classifier (SSP, cRT); ``freeze_backbone`` trains the classifier only (cRT); ``init_head``
    loads a trained linear classifier into an LWS head, frozen, so only its scales train. Test logits
    are computed once, after training, with the best weights.
    """
    m = get_method(method) if isinstance(method, str) else method
    hp = m.hp(hp)
    recipe = m.recipe(recipe, hp)
    recipe.validate()
    rank, world = _rank_world() if distributed else (0, 1)
    device = torch.device(device)
    torch.manual_seed(seed)
    start = ModelStart(model, init_backbone, freeze_backbone, teacher, resume_from, init_head)
    run, state = build_run(data, m, hp, recipe, start, device, rank, world)
    resumed_at = state.epoch
    clock = ReportClock(report_every_s, checkpoint_every_s, recipe.epochs, device, world)
    labels = data.train.y.numpy()
    for epoch in range(state.epoch, recipe.epochs):
        gen = np.random.default_rng([seed, epoch])  # same order on every rank, reproducible on resume
        tgen = torch.Generator().manual_seed(seed * 100003 + epoch * 7919 + rank)
        lr = lr_at(recipe, epoch)
        stats = train_epoch(run, batches(data, run, _epoch_indices(labels, recipe, gen, epoch), tgen), epoch, lr, gen, tgen)
        state.record(_epoch_row(run, data, epoch, lr, stats))
        row = state.history[-1]
        if on_epoch is not None and rank == 0:
            on_epoch(state.history)
        if log and rank == 0:
            log(f"epoch {epoch + 1:>3}/{recipe.epochs}  loss {row['train_loss']:.4f}  lr {lr:.4g}  "
                f"val bal-acc {row['val_bal_acc']:.4f}  {row['images_per_s']:.0f} img/s")
        if report is not None:
            send, with_checkpoint = clock.tick(epoch)
            if send:
                _report_epoch(report, selected_metrics(state.history, state.best_epoch, recipe.epochs), state, rank,
                              with_checkpoint)
    return _fit_result(run, state, data, resumed_at)


def _fit_result(run: Run, state: TrainState, data: DataBundle, resumed_at: int) -> FitResult:
    """Validation and test logits and metrics of the best epoch's weights (loaded into ``run.net``)."""
    if state.best_state is None:
        raise NoSelectableEpoch(f"no epoch of {run.recipe.epochs} had a finite validation balanced accuracy "
                                f"({len(data.val)} validation images), so there is no best epoch to keep")
    net, workers = run.net, run.recipe.loader_workers
    net.load_state_dict(state.best_state)
    val_logits = predict(net, data, "val", run.device, workers=workers) * run.scale
    test_logits = predict(net, data, "test", run.device, workers=workers) * run.scale
    counts, val_y, test_y = data.train_counts, data.val.y.numpy(), data.test.y.numpy()
    val, test = summarize(val_logits, val_y, counts), summarize(test_logits, test_y, counts)
    metrics = {f"val_{k}": v for k, v in val.items()} | {f"test_{k}": v for k, v in test.items()}
    taunorm = _taunorm(net, data, run.device, workers) if isinstance(net.head, torch.nn.Linear) else {}
    return FitResult(val_logits, val_y, test_logits, test_y, counts, state.best_epoch, state.history, metrics,
                     {k: v.cpu() for k, v in net.state_dict().items()}, taunorm, resumed_at)


def _taunorm(net: torch.nn.Module, data: DataBundle, device: torch.device, workers: int) -> dict:
    """tau-normalised classifier results of a linear head, from the backbone's validation and
    test features (batched like :func:`predict`)."""
    feats = {s: predict(net, data, s, device, workers=workers, fn=net.features) for s in ("val", "test")}
    labels = {s: getattr(data, s).y.numpy() for s in feats}
    return tau_normalized_results(feats, labels, net.head.weight.detach().cpu(), data.num_classes)


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


def format_results(res: FitResult) -> str:
    """A small text table of validation/test balanced and per-shot accuracy."""
    n = res.train_counts
    lines = [f"train counts: {n.sum()} images, {n.max()} (head) .. {n.min()} (tail); best epoch {res.best_epoch + 1} (on validation)",
             f"{'split':<6} {'overall':>8} {'many':>8} {'medium':>8} {'few':>8}"]
    groups = {"many": int((n > 100).sum()), "medium": int(((n <= 100) & (n >= 20)).sum()), "few": int((n < 20).sum())}
    for split in ("val", "test"):
        vals = [res.metrics[f"{split}_{k}"] for k in ("bal_acc", "many", "medium", "few")]
        lines.append(f"{split:<6} " + " ".join(f"{v * 100:8.2f}" if v == v else f"{'-':>8}" for v in vals))
    lines.append(f"classes per group: many {groups['many']}, medium {groups['medium']}, few {groups['few']} "
                 f"(many: > 100 training images, few: < 20)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltray.train", description="Train one method and print per-shot accuracy.")
    p.add_argument("--data", default="digits-lt", help="dataset name (digits-lt, cifar10-lt, cifar100-lt, gaussian-lt)")
    p.add_argument("--root", default="data", help="data folder")
    p.add_argument("--rho", type=float, default=100.0, help="imbalance ratio n_max / n_min (>= 1)")
    p.add_argument("--method", default="balanced_softmax", help=f"one of: {', '.join(method_names())}")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="method hyperparameter, repeatable")
    p.add_argument("--model", default="cnn-small", help=f"one of: {', '.join(MODELS)}")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    try:
        hp = {}
        for kv in a.hp:
            k, sep, v = kv.partition("=")
            if not sep:
                raise LtrayError(f"--hp wants KEY=VALUE, got {kv!r}")
            try:
                hp[k] = float(v)
            except ValueError:
                raise LtrayError(f"--hp {k}: {v!r} is not a number") from None
        method = get_method(a.method)
        method.hp(hp)
        if a.model not in MODELS:
            raise LtrayError(f"unknown model {a.model!r}; choose one of {', '.join(MODELS)}")
        recipe = Recipe(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, warmup_epochs=min(5, a.epochs // 4),
                        weight_decay=5e-4)
        recipe.validate()
        data = load_data(DataConfig(name=a.data, root=a.root, rho=a.rho, subset_seed=a.seed))
        print(f"{data.name}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test images, "
              f"{data.num_classes} classes, subset {data.subset_hash}; method {method.name} {hp or ''}")
        res = fit(data, method, hp, a.model, recipe, seed=a.seed, device=a.device, log=print)
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_results(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
