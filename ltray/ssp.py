"""Self-supervised pre-training by rotation prediction (Yang & Xu NeurIPS 2020, SSP): the
backbone learns to tell 0/90/180/270-degree rotations of the long-tailed training images apart,
every image in all four rotations in each batch (so the rotation classes are balanced)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ltray.data import DataBundle, augment_batch, to_float
from ltray.errors import LtrayError
from ltray.models import build_model
from ltray.train import Recipe, TrainingDiverged, lr_at


def pretrain_rotation(data: DataBundle, model: str, recipe: Recipe, seed: int = 0, device="cpu",
                      log=None) -> tuple[dict, list[dict]]:
    """Train ``model``'s backbone on 4-way rotation prediction; returns (backbone state, history)."""
    if not data.in_memory or data.train.x.ndim != 4 or data.train.x.shape[2] != data.train.x.shape[3]:
        raise LtrayError("rotation pre-training needs square in-memory images (digits-lt, cifar*-lt)")
    torch.manual_seed(seed)
    device = torch.device(device)
    net = build_model(model, 4, data.train.x.shape[1]).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    x_all, n = data.train.x.to(device), len(data.train)
    bs = max(recipe.batch_size // 4, 1)  # x4 rotations: the same number of images per step
    history = []
    for epoch in range(recipe.epochs):
        lr = lr_at(recipe, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        gen = np.random.default_rng([seed, epoch, 4])
        tgen = torch.Generator().manual_seed(seed * 7 + epoch)
        order = gen.permutation(n)
        net.train()
        total, count = 0.0, 0
        for step in range(math.ceil(n / bs)):
            idx = torch.from_numpy(order[step * bs:(step + 1) * bs]).to(device)
            xb = to_float(augment_batch(x_all[idx], data.augment if recipe.augment else "none", tgen), data.mean, data.std)
            xr = torch.cat([torch.rot90(xb, k, (2, 3)) for k in range(4)])
            yr = torch.arange(4, device=device).repeat_interleave(xb.shape[0])
            loss = F.cross_entropy(net(xr), yr)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"rotation pre-training loss became {loss.item()} at epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * yr.numel(), count + yr.numel()
        history.append({"epoch": epoch, "rotation_loss": total / count})
        if log:
            log(f"rotation pre-training epoch {epoch + 1}/{recipe.epochs}: loss {total / count:.4f}")
    return {k: v.detach().cpu() for k, v in net.backbone.state_dict().items()}, history
