"""Remix (Chou et al. ECCV 2020 workshops): mixup whose label favours the minority class. With
lambda ~ Beta(alpha, alpha) mixing image i into its partner j, the CE target weight of i's label is
0 when n_i / n_j >= kappa and lambda < tau (the head image gives way), 1 when n_i / n_j <= 1 / kappa
and 1 - lambda < tau, and lambda otherwise; kappa = 3, tau = 0.5, alpha = 1 as in the paper."""

import torch

from ltray.methods import Method, register
from ltray.methods.ce import ce_loss


def remix_weights(hp: dict, counts: torch.Tensor):
    """(lambda, labels (B,), partner labels (B,)) -> per-sample weight (B,) of the first label."""

    def weights(lam: float, y: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
        ratio = counts[y] / counts[partner]
        w = torch.full(y.shape, float(lam), device=y.device)
        w[(ratio >= hp["kappa"]) & (lam < hp["tau"])] = 0.0
        w[(ratio <= 1 / hp["kappa"]) & (1 - lam < hp["tau"])] = 1.0
        return w

    return weights



METHOD = register(Method(
    name="remix",
    summary="Remix: mixup with labels re-assigned towards the minority class (kappa, tau)",
    make_loss=ce_loss,  # on unmixed batches; training re-labels each mixed pair (mix_weights)
    defaults={"alpha": 1.0, "kappa": 3.0, "tau": 0.5},
    space=lambda trial: {"alpha": trial.suggest_float("alpha", 0.2, 2.0),
                         "kappa": trial.suggest_float("kappa", 1.5, 5.0),
                         "tau": trial.suggest_float("tau", 0.3, 0.7)},
    mixup=lambda hp: hp["alpha"],
    mix_weights=remix_weights,
))
