"""Logit-adjusted loss (Menon et al. ICLR 2021): CE(f + tau * log(prior), y)."""

from ltray.core.losses import logit_adjusted_loss
from ltray.methods import Method, prior_of, register


def _loss(counts, epochs, hp, teacher=None):
    prior = prior_of(counts)
    return lambda out, y, epoch, x: logit_adjusted_loss(out, y, prior, hp["tau"])


METHOD = register(Method(
    name="logit_adjusted",
    summary="logit-adjusted loss, CE(f + tau log pi)",
    make_loss=_loss,
    defaults={"tau": 1.0},
    space=lambda trial: {"tau": trial.suggest_float("tau", 0.25, 2.5)},
    balanced_logits=True,
))
