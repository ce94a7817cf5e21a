"""Balanced softmax with class-balanced sampling: BALMS (Ren et al. NeurIPS 2020) without its
meta sampler, said plainly. Plain class-balanced sampling on top of the balanced softmax
corrects the prior twice (the paper's motivation for the meta sampler); this method shows it."""

import dataclasses

from ltray.core.losses import balanced_softmax_loss
from ltray.methods import Method, register


def _loss(counts, epochs, hp, teacher=None):
    def loss(out, y, epoch, x):
        return balanced_softmax_loss(out, y, counts)

    return loss


METHOD = register(Method(
    name="bsce_cbs",
    summary="balanced softmax + class-balanced sampling (BALMS without the meta sampler)",
    make_loss=_loss,
    balanced_logits=True,
    recipe=lambda recipe, hp: dataclasses.replace(recipe, sampler="balanced"),
))
