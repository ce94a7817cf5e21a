"""LADE (Hong et al. CVPR 2021): balanced-softmax CE + alpha * LADER; evaluated with PC softmax."""

from ltray.core.losses import lade_loss
from ltray.methods import Method, prior_of, register


def _loss(counts, epochs, hp, teacher=None):
    prior = prior_of(counts)
    return lambda out, y, epoch, x: lade_loss(out, y, prior, hp["alpha"], hp["lam"])


METHOD = register(Method(
    name="lade",
    summary="LADE: BSCE + alpha * LADER(lambda)",
    make_loss=_loss,
    defaults={"alpha": 0.1, "lam": 0.01},  # CIFAR defaults of the official code
    space=lambda trial: {"alpha": trial.suggest_float("alpha", 0.01, 1.0, log=True),
                         "lam": trial.suggest_float("lam", 1e-3, 1.0, log=True)},
    balanced_logits=True,
))
