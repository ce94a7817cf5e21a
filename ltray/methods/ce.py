"""Plain softmax cross-entropy (ERM): the baseline every method is compared with."""

from ltray.core.losses import cross_entropy
from ltray.methods import Method, register

METHOD = register(Method(
    name="ce",
    summary="softmax cross-entropy (ERM baseline)",
    make_loss=lambda counts, epochs, hp, teacher=None: lambda out, y, epoch, x: cross_entropy(out, y),
))
