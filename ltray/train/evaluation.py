"""Evaluating a model: outputs on a split (``predict``), balanced and per-shot accuracy
(``summarize``), an epoch's history row (``epoch_row``; with ``train.track_test`` also its test
columns, never selected on), the tau-normalised classifier, and the text summary of a run."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from ltray.core.metrics import SHOT_GROUPS, per_class_accuracy, shot_accuracy
from ltray.core.posthoc import logit_prior, tau_curve, tau_normalized_results
from ltray.config.groups import ORACLE_TAU_MAX
from ltray.datasets import DataBundle, ImageList, augment_batch, to_float
from ltray.results.schema import EpochRecord
from ltray.train.loop import EpochStats, Run


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


@torch.no_grad()
def test_views(net: torch.nn.Module, data: DataBundle, device: torch.device, epochs: int, scale: float = 1.0,
               batch: int = 1024, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Per epoch, the expert logits (N_test, E, C) of two augmented views of every test image (the
    dataset's training augmentation, seeded): what SADE's test-time aggregation learns from.
    None for datasets read from files (their views would be read again per epoch; not done)."""
    if not data.in_memory:
        return None
    net.eval()
    tgen = torch.Generator().manual_seed(seed)
    x = data.test.x
    out = []
    for _ in range(epochs):
        pair = []
        for _ in range(2):
            parts = [net.expert_logits(to_float(augment_batch(x[i:i + batch].to(device), data.augment, tgen),
                                                data.mean, data.std)).float().cpu()
                     for i in range(0, len(x), batch)]
            pair.append((torch.cat(parts) * scale).numpy())
        out.append(tuple(pair))
    return out


def summarize(logits: np.ndarray, labels: np.ndarray, train_counts: np.ndarray) -> dict:
    """Balanced accuracy, per-shot accuracy and per-class accuracy of logits on a split."""
    C = train_counts.size
    pc = per_class_accuracy(logits, labels, C)
    return {"bal_acc": float(np.nanmean(pc)), **shot_accuracy(pc, train_counts), "per_class": pc}


def epoch_row(run: Run, data: DataBundle, epoch: int, lr: float, stats: EpochStats) -> dict:
    """An epoch's history row (an ``EpochRecord`` as a plain dict, which a checkpoint can hold):
    training loss and speed, validation metrics of its weights, and its test columns."""
    val_logits = predict(run.net, data, "val", run.device, workers=run.recipe.loader_workers) * run.scale
    val = summarize(val_logits, data.val.y.numpy(), data.train_counts)
    dt = stats.seconds
    return dataclasses.asdict(EpochRecord(
        epoch=epoch, lr=lr, train_loss=stats.loss, val_bal_acc=val["bal_acc"], val_many=val["many"],
        val_medium=val["medium"], val_few=val["few"], images_per_s=stats.images * run.world / dt if dt > 0 else float("nan"),
        epoch_s=dt, **_epoch_test(run, data)))


def _epoch_test(run: Run, data: DataBundle) -> dict:
    """``recipe.track_test``: this epoch's test balanced and per-shot accuracy, and the best test
    balanced accuracy over post-hoc tau in [0, 3] (the exact curve, chosen on test): the numbers a
    repository that selects on test would publish. NaN (the record's default) when not tracked.
    Never used to select."""
    if not run.recipe.track_test:
        return {}
    counts = data.train_counts
    logits = predict(run.net, data, "test", run.device, workers=run.recipe.loader_workers) * run.scale
    y = data.test.y.numpy()
    test = summarize(logits, y, counts)
    oracle = tau_curve(logits, y, logit_prior(counts, run.balanced), ORACLE_TAU_MAX).best
    return {"test_bal_acc": test["bal_acc"], **{f"test_{g}": test[g] for g in SHOT_GROUPS},
            "test_bal_acc_tau_oracle": oracle}


def taunorm_results(net: torch.nn.Module, data: DataBundle, device: torch.device, workers: int) -> dict:
    """tau-normalised classifier results of a linear head, from the backbone's validation and
    test features (batched like :func:`predict`)."""
    feats = {s: predict(net, data, s, device, workers=workers, fn=net.features) for s in ("val", "test")}
    labels = {s: getattr(data, s).y.numpy() for s in feats}
    return tau_normalized_results(feats, labels, net.head.weight.detach().cpu(), data.num_classes)
