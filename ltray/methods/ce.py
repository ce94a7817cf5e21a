"""Plain softmax cross-entropy (ERM): the baseline every method is compared with."""

from ltray.core.losses import cross_entropy, weighted_cross_entropy
from ltray.methods import Method, register


def ce_loss(counts, epochs, hp, teacher=None):
    """Plain CE, whatever the counts: the loss of every method that changes only what it trains
    on (cRT, LWS, DRS, mixup, Remix, weight balancing's first stage)."""

    def loss(out, y, epoch, x):
        return cross_entropy(out, y)

    return loss


def weighted_ce_loss(weight):
    """CE with a fixed weight per class (a tensor of C): the loss of the re-weighting methods
    (cb_ce, reweight, weight balancing's second stage), which differ only in the weights."""

    def loss(out, y, epoch, x):
        return weighted_cross_entropy(out, y, weight)

    return loss


METHOD = register(Method(
    name="ce",
    summary="softmax cross-entropy (ERM baseline)",
    make_loss=ce_loss,
))
