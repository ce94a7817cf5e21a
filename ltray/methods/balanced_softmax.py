"""Balanced Softmax (Ren et al. NeurIPS 2020): CE(f + log(n), y)."""

from ltray.core.losses import balanced_softmax_loss
from ltray.methods import Method, register

METHOD = register(Method(
    name="balanced_softmax",
    summary="balanced softmax, CE(f + log n)",
    make_loss=lambda counts, epochs, hp, teacher=None: lambda out, y, epoch, x: balanced_softmax_loss(out, y, counts),
    balanced_logits=True,
))
