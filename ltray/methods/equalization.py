"""Softmax equalization loss (Tan et al. CVPR 2020): tail logits other than the target's are
dropped from the denominator for classes with prior below lambda."""

from ltray.core.losses import equalization_loss
from ltray.methods import Method, prior_of, register


def _loss(counts, epochs, hp, teacher=None):
    prior = prior_of(counts)
    return lambda out, y, epoch, x: equalization_loss(out, y, prior, hp["lam"])


METHOD = register(Method(
    name="equalization",
    summary="softmax equalization loss (frequency threshold lambda)",
    make_loss=_loss,
    defaults={"lam": 0.005},
    space=lambda trial: {"lam": trial.suggest_float("lam", 1e-4, 0.1, log=True)},
))
