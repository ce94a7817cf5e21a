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
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from ltray.core.metrics import VAL_METRICS, balanced_accuracy, per_class_accuracy, shot_accuracy
from ltray.data import DataBundle, DataConfig, ImageList, augment_batch, load_data, to_float
from ltray.errors import LtrayError
from ltray.methods import Method, get_method, method_names
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
    run are judged at the same fraction)."""
    row = history[-1]
    best = next((h for h in history if h["epoch"] == best_epoch), None)
    out = {f"epoch_{k}": row[k] for k in VAL_METRICS}
    out.update({k: (best[k] if best is not None else float("nan")) for k in VAL_METRICS})
    return out | {"epoch": row["epoch"], "selected_epoch": best_epoch, "progress": (row["epoch"] + 1) / epochs,
                  "train_loss": row["train_loss"], "lr": row["lr"]}


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


def _epoch_indices(labels: np.ndarray, recipe: Recipe, gen: np.random.Generator) -> np.ndarray:
    """One epoch of global sample indices (same on every rank: each takes its own shard)."""
    n = labels.size
    if recipe.sampler == "random":
        return gen.permutation(n)
    # class-balanced: pick a class uniformly, then an image of it uniformly (cRT, Kang et al.)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    cls = gen.integers(0, len(by_class), n)
    pick = gen.random(n)
    return np.array([by_class[c][int(p * by_class[c].size)] for c, p in zip(cls, pick)], dtype=np.int64)


@torch.no_grad()
def predict(model: torch.nn.Module, data: DataBundle, split: str, device: torch.device, batch: int = 1024,
            workers: int = 0) -> np.ndarray:
    """Model outputs (N, C) on a split, in eval mode, float32 numpy."""
    model.eval()
    s = getattr(data, split)
    outs = []
    if data.in_memory:
        for i in range(0, len(s), batch):
            xb = to_float(s.x[i:i + batch].to(device), data.mean, data.std)
            outs.append(model(xb).float().cpu())
    else:
        ds = ImageList(s.paths, s.y, data.image_size, False, data.mean, data.std)
        for xb, _ in torch.utils.data.DataLoader(ds, batch_size=min(batch, 256), num_workers=workers):
            outs.append(model(xb.to(device)).float().cpu())
    return torch.cat(outs).numpy() if outs else np.zeros((0, data.num_classes), np.float32)


def summarize(logits: np.ndarray, labels: np.ndarray, train_counts: np.ndarray) -> dict:
    """Balanced accuracy, per-shot accuracy and per-class accuracy of logits on a split."""
    C = train_counts.size
    pc = per_class_accuracy(logits, labels, C)
    return {"bal_acc": float(np.nanmean(pc)), **shot_accuracy(pc, train_counts), "per_class": pc}


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
    classifier (SSP, cRT); ``freeze_backbone`` trains the classifier only (cRT). Test logits
    are computed once, after training, with the best weights.
    """
    m = get_method(method) if isinstance(method, str) else method
    hp = m.hp(hp)
    recipe = m.recipe(recipe, hp)
    recipe.validate()
    rank, world = _rank_world() if distributed else (0, 1)
    device = torch.device(device)
    torch.manual_seed(seed)
    counts_np = data.train_counts
    if (counts_np == 0).any():
        raise LtrayError(f"{data.name}: classes {np.flatnonzero(counts_np == 0).tolist()} have no training image")
    counts = torch.as_tensor(counts_np, dtype=torch.float32, device=device)
    in_ch, in_dim = data.input_shape
    net = build_model(model, data.num_classes, in_ch, m.head, in_dim).to(device)
    if init_backbone is not None:
        net.backbone.load_state_dict(init_backbone)
    if freeze_backbone:
        for p in net.backbone.parameters():
            p.requires_grad_(False)
    if m.teacher and teacher is None:
        raise LtrayError(f"method {m.name} needs a trained {m.teacher} teacher (ltray.stages.get_trained)")
    loss_fn = m.make_loss(counts, recipe.epochs, hp, teacher.to(device) if teacher is not None else None)
    scale = m.logit_scale(hp)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    start, best_val, best_epoch, history, best_state = 0, -1.0, -1, [], None
    if resume_from:
        ck = load_checkpoint(resume_from)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start, best_val, best_epoch = ck["epoch"] + 1, ck["best_val"], ck["best_epoch"]
        history, best_state = list(ck["history"]), ck["best_state"]
    fmt = torch.channels_last if recipe.channels_last else torch.contiguous_format
    if recipe.channels_last:
        net = net.to(memory_format=torch.channels_last)
    train_net = net
    resumed_at = start
    if world > 1:
        train_net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if recipe.compile:
        train_net = torch.compile(train_net)  # compiled once; every epoch of this run reuses it
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.bf16)
    last_ckpt = last_report = time.monotonic()
    labels_np = data.train.y.numpy()
    local_bs = max(recipe.batch_size // world, 1)
    x_dev = data.train.x.to(device) if data.in_memory else None
    y_dev = data.train.y.to(device)
    aug = data.augment if recipe.augment else "none"
    mix_alpha = max(recipe.mixup_alpha, m.mixup(hp))

    for epoch in range(start, recipe.epochs):
        lr = lr_at(recipe, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        gen = np.random.default_rng([seed, epoch])  # same order on every rank, reproducible on resume
        tgen = torch.Generator().manual_seed(seed * 100003 + epoch * 7919 + rank)
        order = _epoch_indices(labels_np, recipe, gen)
        steps = math.ceil(order.size / recipe.batch_size)
        train_net.train()
        if freeze_backbone:
            net.backbone.eval()  # frozen BatchNorm statistics too
        t0, seen = time.perf_counter(), 0
        loss_sum_t = torch.zeros((), device=device)  # summed on the device: no host sync per step
        batches = _file_batches(data, order, recipe, rank, world, local_bs) if not data.in_memory else None
        for step in range(steps):
            if data.in_memory:
                glob = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
                idx = torch.from_numpy(glob[rank::world]).to(device)
                if idx.numel() == 0:
                    idx = torch.from_numpy(glob[:1]).to(device)  # keep DDP ranks in step
                xb = to_float(augment_batch(x_dev[idx], aug, tgen), data.mean, data.std).contiguous(memory_format=fmt)
                yb = y_dev[idx]
            else:
                xb, yb = next(batches)
                xb, yb = xb.to(device, non_blocking=True), yb.to(device)
            with autocast:
                if mix_alpha > 0:  # mixup: the loss of a mixed batch is the mix of the two labels' losses
                    lam = float(gen.beta(mix_alpha, mix_alpha))
                    perm = torch.randperm(yb.numel(), generator=tgen).to(device)
                    xb = lam * xb + (1 - lam) * xb[perm]
                    out = train_net(xb).float()
                    loss = lam * loss_fn(out, yb, epoch, xb) + (1 - lam) * loss_fn(out, yb[perm], epoch, xb)
                else:
                    loss = loss_fn(train_net(xb).float(), yb, epoch, xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += yb.numel()
            loss_sum_t += loss.detach().float() * yb.numel()
        loss_sum = float(loss_sum_t)  # the epoch's one sync; a NaN step makes the sum NaN
        finite = math.isfinite(loss_sum)
        if world > 1:  # every rank stops together, or the others would wait in the next collective
            flag = torch.tensor([float(finite)], device=device if device.type == "cuda" else "cpu")
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = bool(flag.item())
        if not finite:
            raise TrainingDiverged(f"loss became {loss_sum / max(seen, 1)} in epoch {epoch} (lr {lr:g})")
        dt = time.perf_counter() - t0
        val_logits = predict(net, data, "val", device, workers=recipe.loader_workers) * scale
        val = summarize(val_logits, data.val.y.numpy(), counts_np)
        row = {"epoch": epoch, "lr": lr, "train_loss": loss_sum / max(seen, 1),
               "val_bal_acc": val["bal_acc"], "val_many": val["many"], "val_medium": val["medium"],
               "val_few": val["few"], "images_per_s": seen * world / dt if dt > 0 else float("nan"),
               "epoch_s": dt}
        history.append(row)
        if math.isfinite(val["bal_acc"]) and val["bal_acc"] > best_val:
            best_val, best_epoch = val["bal_acc"], epoch
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        if on_epoch is not None and rank == 0:
            on_epoch(history)
        if log and rank == 0:
            log(f"epoch {epoch + 1:>3}/{recipe.epochs}  loss {row['train_loss']:.4f}  lr {lr:.4g}  "
                f"val bal-acc {val['bal_acc']:.4f}  {row['images_per_s']:.0f} img/s")
        if report is not None:
            now = time.monotonic()
            due = now - last_ckpt >= checkpoint_every_s or epoch == recipe.epochs - 1
            flags = [due, due or now - last_report >= report_every_s]
            if world > 1:  # every rank must agree, or DDP ranks would report differently
                flag = torch.tensor([float(f) for f in flags], device=device if device.type == "cuda" else "cpu")
                dist.broadcast(flag, 0)
                flags = [bool(f) for f in flag.tolist()]
            due, send = flags
            if send:
                _report_epoch(report, selected_metrics(history, best_epoch, recipe.epochs), rank, net, opt, epoch,
                              best_val, best_epoch, history, best_state, due)
                last_report = now
            if due:
                last_ckpt = now

    if best_state is None:
        raise NoSelectableEpoch(f"no epoch of {recipe.epochs} had a finite validation balanced accuracy "
                                f"({len(data.val)} validation images), so there is no best epoch to keep")
    net.load_state_dict(best_state)
    val_logits = predict(net, data, "val", device, workers=recipe.loader_workers) * scale
    test_logits = predict(net, data, "test", device, workers=recipe.loader_workers) * scale
    val_y, test_y = data.val.y.numpy(), data.test.y.numpy()
    val, test = summarize(val_logits, val_y, counts_np), summarize(test_logits, test_y, counts_np)
    metrics = {f"val_{k}": v for k, v in val.items()} | {f"test_{k}": v for k, v in test.items()}
    taunorm = tau_normalized_results(net, data, device, counts_np, recipe.loader_workers) \
        if isinstance(net.head, torch.nn.Linear) else {}
    return FitResult(val_logits, val_y, test_logits, test_y, counts_np, best_epoch, history, metrics,
                     {k: v.cpu() for k, v in net.state_dict().items()}, taunorm, resumed_at)


TAUNORM_GRID = np.round(np.linspace(0.0, 2.0, 21), 10)  # tau in [0, 2], Kang et al.


@torch.no_grad()
def tau_normalized_results(net, data: DataBundle, device, counts: np.ndarray, workers: int = 0) -> dict:
    """tau-normalised classifier (Kang et al.): logits = features @ (w_c / ||w_c||^tau), bias
    dropped; tau* picked on validation over a 0.1 grid of [0, 2] (the features are not linear in
    tau, so no exact curve). Returns tau*, validation/test balanced accuracy, and tau = 1."""
    from ltray.core.posthoc import tau_normalize

    feats = {}
    for split in ("val", "test"):
        head = net.head
        net.head = torch.nn.Identity()  # features through the same batching as predict()
        try:
            feats[split] = torch.from_numpy(predict(net, data, split, device, workers=workers)).double()
        finally:
            net.head = head
    w = net.head.weight.detach().cpu().double()
    ys = {s: getattr(data, s).y.numpy() for s in feats}
    C = counts.size

    def bal(split, tau):
        return balanced_accuracy((feats[split] @ tau_normalize(w, tau).T).numpy(), ys[split], C)

    val_curve = [bal("val", t) for t in TAUNORM_GRID]
    k = int(np.argmax(val_curve))
    return {"tau_star": float(TAUNORM_GRID[k]), "val_bal_acc": float(val_curve[k]),
            "test_bal_acc": bal("test", float(TAUNORM_GRID[k])), "test_bal_acc_tau1": bal("test", 1.0)}


def _file_batches(data: DataBundle, order: np.ndarray, recipe: Recipe, rank: int, world: int, local_bs: int):
    """Batches of a list-file dataset through a DataLoader over this rank's shard of the order."""
    mine = np.concatenate([order[i:i + recipe.batch_size][rank::world] for i in range(0, order.size, recipe.batch_size)])
    ds = ImageList(data.train.paths, data.train.y, data.image_size, recipe.augment, data.mean, data.std)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, mine.tolist()), batch_size=local_bs,
                                         num_workers=recipe.loader_workers, pin_memory=torch.cuda.is_available())
    return iter(loader)


def _report_epoch(report: Report, row: dict, rank: int, net, opt, epoch, best_val, best_epoch, history, best_state,
                  with_checkpoint: bool = True):
    if rank != 0 or not with_checkpoint:
        report(row, None)
        return
    with tempfile.TemporaryDirectory(prefix="ltray-ckpt-") as d:
        save_checkpoint(d, {"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                            "best_val": best_val, "best_epoch": best_epoch, "history": history,
                            "best_state": best_state})
        report(row, d)  # the listener copies what it keeps before the folder goes


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
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise LtrayError(f"{path} is not an ltray checkpoint (refused to load: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from e
    need = {"model", "optimizer", "epoch", "best_val", "best_epoch", "history", "best_state"}
    if not isinstance(ck, dict) or not need <= set(ck):
        raise LtrayError(f"{path} is not an ltray checkpoint (missing {sorted(need - set(ck) if isinstance(ck, dict) else need)})")
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
