"""LDAM-DRW (Cao et al. NeurIPS 2019): label-distribution-aware margins on a cosine head, with
deferred re-weighting from the DRW epoch on (160 of 200 epochs in the paper: 80%)."""

from ltray.core.losses import drw_weights, ldam_loss
from ltray.methods import Method, register


def _loss(counts, epochs, hp, teacher=None):
    drw_epoch = int(round(hp["drw_frac"] * epochs))
    weight = drw_weights(counts, hp["beta"]).float()
    return lambda out, y, epoch, x: ldam_loss(out, y, counts, hp["max_m"], hp["s"],
                                           weight if epoch >= drw_epoch else None)


METHOD = register(Method(
    name="ldam_drw",
    summary="LDAM margins + deferred re-weighting, cosine head",
    make_loss=_loss,
    defaults={"max_m": 0.5, "s": 30.0, "drw_frac": 0.8, "beta": 0.9999},
    space=lambda trial: {"max_m": trial.suggest_float("max_m", 0.1, 1.0),
                         "s": trial.suggest_float("s", 5.0, 50.0),
                         "drw_frac": trial.suggest_float("drw_frac", 0.5, 0.9)},
    head="cosine",
    logit_scale=lambda hp: hp["s"],
))
