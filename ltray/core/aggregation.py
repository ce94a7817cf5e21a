"""SADE's test-time self-supervised aggregation (Zhang et al. NeurIPS 2022): on a test set's
*unlabelled* images, learn only the weights of the experts' logits, so that the aggregated
predictions of two augmented views of each image agree. It reads the test images, so what it
gives is a transductive result, never the method's inductive prediction.

As the authors' ``test_training_cifar.py`` (Vanint/SADE-AgnosticLT): weights ``softmax(w)``, w
started equal; loss ``-cos(softmax(sum_k a_k z_k(view 1)), softmax(sum_k a_k z_k(view 2)))``
averaged over a batch of 128; SGD lr 0.1, momentum 0.9, nesterov, weight decay 5e-4 on w; at
most 5 epochs, stopping after an epoch in which a weight (rounded to 2 decimals) fell below 0.05.
The model is frozen, so each epoch's two views enter as precomputed expert logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ltray.errors import LtrayError


def aggregate(expert_logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_k weights_k * logits_k``: (N, E, C) and (E,) -> (N, C)."""
    return (expert_logits * weights.to(expert_logits)[None, :, None]).sum(1)


def learn_weights(views: list[tuple[torch.Tensor, torch.Tensor]], batch: int = 128, lr: float = 0.1,
                  momentum: float = 0.9, weight_decay: float = 5e-4, stop_below: float = 0.05,
                  seed: int = 0) -> torch.Tensor:
    """The experts' aggregation weights (E,), summing to 1, learnt from one (view 1, view 2) pair
    of expert logits (N, E, C) per epoch (the two augmented views of that epoch)."""
    if not views:
        raise LtrayError("test-time aggregation needs at least one epoch of two views")
    n, e, _ = views[0][0].shape
    if any(a.shape != views[0][0].shape or b.shape != a.shape for a, b in views):
        raise LtrayError("every view must hold the same images' expert logits, (N, E, C)")
    w = torch.nn.Parameter(torch.full((e,), 1.0 / e, dtype=torch.float64))  # softmax: equal weights
    opt = torch.optim.SGD([w], lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    for a, b in views:
        a, b = a.double(), b.double()
        for idx in torch.randperm(n, generator=g).split(batch):
            p = F.softmax(w, 0)
            agree = F.cosine_similarity(F.softmax(aggregate(a[idx], p), 1), F.softmax(aggregate(b[idx], p), 1),
                                        dim=1, eps=1e-6)
            opt.zero_grad()
            (-agree.mean()).backward()
            opt.step()
        if (torch.round(F.softmax(w, 0).detach(), decimals=2) < stop_below).any():
            break
    return F.softmax(w, 0).detach()
