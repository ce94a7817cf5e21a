"""Self-supervised pre-training by rotation prediction (Yang & Xu NeurIPS 2020, SSP): the
backbone learns to tell 0/90/180/270-degree rotations of the long-tailed training images apart,
every image in all four rotations in each batch (so the rotation classes are balanced)."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ltray.config.recipe import Recipe
from ltray.datasets import DataBundle
from ltray.errors import LtrayError
from ltray.models import build_model
from ltray.train.loop import Run, TrainingDiverged, batches, lr_at, train_epoch


def _rotated(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every image of each batch in all four rotations, labelled by rotation (0..3 quarter turns):
    images (B, C, H, W) -> inputs (4B, C, H, W), labels (4B,)."""
    for xb, _ in batches:
        yield (torch.cat([torch.rot90(xb, k, (2, 3)) for k in range(4)]),
               torch.arange(4, device=xb.device).repeat_interleave(xb.shape[0]))


def _rotation_loss(out: torch.Tensor, y: torch.Tensor, epoch: int, x: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y)


def pretrain_rotation(data: DataBundle, model: str, recipe: Recipe, seed: int = 0, device="cpu",
                      log=None) -> tuple[dict, list[dict]]:
    """Train ``model``'s backbone on 4-way rotation prediction; returns (backbone state, history)."""
    if not data.in_memory or data.train.x.ndim != 4 or data.train.x.shape[2] != data.train.x.shape[3]:
        raise LtrayError("rotation pre-training needs square in-memory images (digits-lt, cifar*-lt)")
    torch.manual_seed(seed)
    device = torch.device(device)
    net = build_model(model, 4, data.train.x.shape[1]).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    # x4 rotations: a quarter of the images per step keeps the step's batch size; plain fp32
    # steps without mixup (Run's default), as rotation pre-training has always trained
    steps = dataclasses.replace(recipe, batch_size=max(recipe.batch_size // 4, 1), bf16=False, channels_last=False)
    run = Run(net=net, train_net=net, loss_fn=_rotation_loss, opt=opt, recipe=steps, device=device,
              x_train=data.train.x.to(device), y_train=data.train.y.to(device))
    history = []
    for epoch in range(recipe.epochs):
        gen = np.random.default_rng([seed, epoch, 4])
        tgen = torch.Generator().manual_seed(seed * 7 + epoch)
        order = gen.permutation(len(data.train))
        try:
            stats = train_epoch(run, _rotated(batches(data, run, order, tgen)), epoch, lr_at(recipe, epoch), gen, tgen)
        except TrainingDiverged as e:
            raise TrainingDiverged(f"rotation pre-training: {e}") from e
        history.append({"epoch": epoch, "rotation_loss": stats.loss})
        if log:
            log(f"rotation pre-training epoch {epoch + 1}/{recipe.epochs}: loss {stats.loss:.4f}")
    return {k: v.detach().cpu() for k, v in net.backbone.state_dict().items()}, history
