"""Class-balanced re-weighting (Cui et al. CVPR 2019) with softmax CE: each class's loss weighted
by the inverse of its effective number of samples ``(1 - beta^n_c) / (1 - beta)``, weights
normalised to sum to C; beta = 0.9999 (the paper's CIFAR-LT choice)."""

from ltray.core.losses import drw_weights, weighted_cross_entropy
from ltray.methods import Method, register


def _loss(counts, epochs, hp, teacher=None):
    weight = drw_weights(counts, hp["beta"]).float()  # the same effective-number weights as DRW

    def loss(out, y, epoch, x):
        return weighted_cross_entropy(out, y, weight)

    return loss


METHOD = register(Method(
    name="cb_ce",
    summary="class-balanced CE: weights from the effective number of samples (beta)",
    make_loss=_loss,
    defaults={"beta": 0.9999},
    space=lambda trial: {"beta": trial.suggest_float("beta", 0.99, 0.99999)},
))
