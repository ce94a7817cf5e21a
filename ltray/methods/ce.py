"""Plain softmax cross-entropy (ERM): the baseline every method is compared with."""

from ltray.core.losses import cross_entropy
from ltray.methods import Method, register

def ce_loss(counts, epochs, hp, teacher=None):
    """Plain CE, whatever the counts: the loss of every method that changes only what it trains
    on (cRT, LWS, DRS, mixup, Remix, weight balancing's first stage)."""

    def loss(out, y, epoch, x):
        return cross_entropy(out, y)

    return loss


METHOD = register(Method(
    name="ce",
    summary="softmax cross-entropy (ERM baseline)",
    make_loss=ce_loss,
))
