"""Softmax equalization loss (Tan et al. CVPR 2020): for classes with prior below lambda, the
logits of tail classes other than the target's leave the softmax denominator, each with
probability gamma (0.9 in the paper's configs)."""

import torch

from ltray.core.losses import equalization_loss
from ltray.methods import Method, prior_of, register


def _loss(counts, epochs, hp, teacher=None):
    prior = prior_of(counts)
    gen = torch.Generator()
    seeded = {"epoch": None}

    def loss(out, y, epoch, x):
        # the Bernoulli draws come from a generator reseeded per epoch, so a run resumed from a
        # checkpoint draws the same masks as one that never stopped
        if seeded["epoch"] != epoch:
            gen.manual_seed(1_000_003 * epoch + 7)
            seeded["epoch"] = epoch
        return equalization_loss(out, y, prior, hp["lam"], hp["gamma"], generator=gen)

    return loss


METHOD = register(Method(
    name="equalization",
    summary="softmax equalization loss (frequency threshold lambda, drop probability gamma)",
    make_loss=_loss,
    defaults={"lam": 0.005, "gamma": 0.9},
    space=lambda trial: {"lam": trial.suggest_float("lam", 1e-4, 0.1, log=True),
                         "gamma": trial.suggest_float("gamma", 0.5, 1.0)},
))
