"""Class-balanced focal loss (Cui et al. CVPR 2019): the effective-number class weights on the
softmax focal loss; beta = 0.9999, gamma = 1.0 (the paper's CIFAR-10-LT rho 100 choice)."""

from ltray.core.losses import drw_weights, focal_loss
from ltray.methods import Method, register


def _loss(counts, epochs, hp, teacher=None):
    weight = drw_weights(counts, hp["beta"]).float()

    def loss(out, y, epoch, x):
        return focal_loss(out, y, hp["gamma"], weight)

    return loss


METHOD = register(Method(
    name="cb_focal",
    summary="class-balanced focal loss: effective-number weights (beta), focusing gamma",
    make_loss=_loss,
    defaults={"beta": 0.9999, "gamma": 1.0},
    space=lambda trial: {"beta": trial.suggest_float("beta", 0.99, 0.99999),
                         "gamma": trial.suggest_float("gamma", 0.5, 2.0)},
))
