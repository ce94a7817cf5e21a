"""Focal loss (Lin et al. ICCV 2017), softmax form: down-weights well-classified samples by
(1 - p)^gamma; gamma = 2 as in the paper."""

from ltray.core.losses import focal_loss
from ltray.methods import Method, register


def _loss(counts, epochs, hp, teacher=None):
    def loss(out, y, epoch, x):
        return focal_loss(out, y, hp["gamma"])

    return loss


METHOD = register(Method(
    name="focal",
    summary="focal loss (softmax), focusing parameter gamma",
    make_loss=_loss,
    defaults={"gamma": 2.0},
    space=lambda trial: {"gamma": trial.suggest_float("gamma", 0.5, 3.0)},
))
