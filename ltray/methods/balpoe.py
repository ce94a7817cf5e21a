"""BalPoE (Sanchez Aimar et al. CVPR 2023, "Balanced Product of Calibrated Experts"): E experts on a
shared trunk (``ltray.models.Experts``, cosine heads at s = 30), expert k trained with the
logit-adjusted loss ``CE(z_k + tau_k log pi, y)``, taus evenly spaced over [0, 2] (CE, balanced
softmax, inverse), the loss their mean, with mixup (alpha 0.4), as emasa/BalPoE-CalibratedLT's
``BSExpertLoss`` and CIFAR configuration. The mean of the experts' logits is balanced because the
taus average to 1 (the paper's lambda = 1 - tau averages to 0).

Where ltray differs: the experts' branches are 0.75 as wide as the single model's (RIDE's and
SADE's layout; BalPoE's CIFAR config keeps full width), and ltray trains the study's recipe (the
authors: 200 epochs, LR x0.1 at 160 and 180)."""

from ltray.core.losses import balpoe_loss, balpoe_taus
from ltray.errors import LtrayError
from ltray.methods import Method, prior_of, register


def _loss(counts, epochs, hp, teacher=None):
    prior = prior_of(counts).float()
    taus = balpoe_taus(int(hp["experts"]), hp["tau_min"], hp["tau_max"])
    if abs(float(taus.mean()) - 1.0) > 1e-9:
        raise LtrayError(f"balpoe: the experts' taus must average 1 (tau_min + tau_max = 2) for their mean to "
                         f"be balanced; got {hp['tau_min']} and {hp['tau_max']}")
    return lambda out, y, epoch, x: balpoe_loss(hp["s"] * out, y, prior, taus)


METHOD = register(Method(
    name="balpoe",
    summary="experts trained with logit adjustment at taus averaging 1, mean of their logits",
    make_loss=_loss,
    defaults={"experts": 3, "tau_min": 0.0, "tau_max": 2.0, "s": 30.0, "mixup": 0.4},
    space=lambda trial: {"mixup": trial.suggest_float("mixup", 0.0, 1.0)},
    head="cosine",
    logit_scale=lambda hp: hp["s"],
    balanced_logits=True,
    mixup=lambda hp: hp["mixup"],
    experts=lambda hp: int(hp["experts"]),
))
