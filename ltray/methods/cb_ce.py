"""Class-balanced re-weighting (Cui et al. CVPR 2019) with softmax CE: each class's loss weighted
by the inverse of its effective number of samples ``(1 - beta^n_c) / (1 - beta)``, weights
normalised to sum to C; beta = 0.9999 (the paper's CIFAR-LT choice)."""

from ltray.core.losses import drw_weights
from ltray.methods import Method, register
from ltray.methods.ce import weighted_ce_loss


def class_balanced_loss(counts, epochs, hp, teacher=None):
    """CE weighted by the effective number of samples (also weight balancing's second stage)."""
    return weighted_ce_loss(drw_weights(counts, hp["beta"]).float())  # the same weights as DRW


METHOD = register(Method(
    name="cb_ce",
    summary="class-balanced CE: weights from the effective number of samples (beta)",
    make_loss=class_balanced_loss,
    defaults={"beta": 0.9999},
    space=lambda trial: {"beta": trial.suggest_float("beta", 0.99, 0.99999)},
))
