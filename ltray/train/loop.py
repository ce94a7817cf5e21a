"""One run's training steps, set up once and stepped per epoch: the learning-rate schedule, the
epoch's sample order (instance- or class-balanced), the model and its wrappers (``build_run``),
batches drawn by index on the device, and ``train_epoch``. No Ray, no evaluation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ltray.config.recipe import Recipe
from ltray.datasets import DataBundle, ImageList, augment_batch, to_float
from ltray.errors import LtrayError
from ltray.methods import LossFn, Method, logits_are_balanced
from ltray.models import build_model
from ltray.train.checkpoint import TrainState, load_checkpoint


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


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def collective_device(device: torch.device) -> torch.device | str:
    return device if device.type == "cuda" else "cpu"  # NCCL wants CUDA tensors, gloo CPU ones


def balanced_from(recipe: Recipe) -> int:
    """The first epoch with class-balanced batches: 0 with sampler=balanced, the resample_from
    fraction of the epochs with deferred re-sampling (DRS), else never (the epoch count)."""
    if recipe.sampler == "balanced":
        return 0
    return int(round(recipe.resample_from * recipe.epochs)) if recipe.resample_from < 1 else recipe.epochs


def epoch_indices(labels: np.ndarray, recipe: Recipe, gen: np.random.Generator, epoch: int = 0) -> np.ndarray:
    """One epoch of global sample indices (same on every rank: each takes its own shard)."""
    n = labels.size
    if epoch < balanced_from(recipe):
        return gen.permutation(n)
    # class-balanced: pick a class uniformly, then an image of it uniformly (cRT, Kang et al.)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    cls = gen.integers(0, len(by_class), n)
    pick = gen.random(n)
    return np.array([by_class[c][int(p * by_class[c].size)] for c, p in zip(cls, pick)], dtype=np.int64)


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
    after_epoch: Callable[[], None] | None = None
    """Called after every epoch's steps (weight balancing's MaxNorm projection)."""
    freeze_backbone: bool = False
    """Keep the backbone in eval mode while training (cRT: frozen BatchNorm statistics too)."""
    balanced: bool = False
    """The logits carry no training prior (a balanced loss or sampler): post-hoc LA has nothing to divide out."""
    test_time_views: int = 0
    """Epochs of two augmented views of the test images whose expert logits the run leaves (SADE)."""


def _setup_model(data: DataBundle, head: str, start: ModelStart, device: torch.device, experts: int = 0
                 ) -> torch.nn.Module:
    """The model on ``device``, from ``start.init_backbone`` if given, backbone frozen if asked."""
    in_ch, in_dim = data.input_shape
    net = build_model(start.name, data.num_classes, in_ch, head, in_dim, experts).to(device)
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
    net = _setup_model(data, method.head, start, device, method.experts(hp))
    if method.prepare is not None:
        method.prepare(net, hp)
    if method.teacher and start.teacher is None:
        raise LtrayError(f"method {method.name} needs a trained {method.teacher} teacher (ltray.stages.get_trained)")
    teacher = start.teacher.to(device) if start.teacher is not None else None
    loss_fn = method.make_loss(counts_t, recipe.epochs, hp, teacher)
    opt = torch.optim.SGD(_param_groups(net, recipe.weight_decay, method.decay_head_bias), lr=recipe.lr,
                          momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    # restored before wrapping: DDP then starts every rank from the checkpoint's weights
    state = TrainState.from_checkpoint(load_checkpoint(start.resume_from), net, opt) if start.resume_from \
        else TrainState(net, opt)
    run = Run(net=net, train_net=_wrap(net, recipe, device, world), loss_fn=loss_fn, opt=opt, recipe=recipe,
              device=device, x_train=data.train.x.to(device) if data.in_memory else None,
              y_train=data.train.y.to(device), rank=rank, world=world, scale=method.logit_scale(hp),
              mix_alpha=max(recipe.mixup_alpha, method.mixup(hp)), freeze_backbone=start.freeze_backbone,
              mix_weights=method.mix_weights(hp, counts_t) if method.mix_weights else None,
              after_epoch=(lambda: method.after_epoch(net, hp)) if method.after_epoch else None,
              balanced=logits_are_balanced(method, recipe), test_time_views=method.test_time_views)
    return run, state


def _param_groups(net: torch.nn.Module, weight_decay: float, decay_head_bias: bool) -> list[dict]:
    """The trainable parameters, in one group; the classifier's bias apart without weight decay
    when the method says so."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    bias = getattr(net.head, "bias", None)
    if decay_head_bias or bias is None or not bias.requires_grad:
        return [{"params": trainable}]
    return [{"params": [p for p in trainable if p is not bias]}, {"params": [bias], "weight_decay": 0.0}]


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
        seen += yb.numel()
        loss_sum_t += loss.detach().float() * yb.numel()
    if run.after_epoch is not None:
        run.after_epoch()
    loss_sum = float(loss_sum_t)  # the epoch's one sync; a NaN step makes the sum NaN
    finite = math.isfinite(loss_sum)
    if run.world > 1:  # every rank stops together, or the others would wait in the next collective
        flag = torch.tensor([float(finite)], device=collective_device(run.device))
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        finite = bool(flag.item())
    if not finite:
        raise TrainingDiverged(f"loss became {loss_sum / max(seen, 1)} in epoch {epoch} (lr {lr:g})")
    return EpochStats(loss_sum / max(seen, 1), seen, time.perf_counter() - t0)
