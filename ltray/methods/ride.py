"""RIDE (Wang et al. ICLR 2021, "Routing Diverse Distribution-Aware Experts"): E experts on a
shared trunk (``ltray.models.Experts``, cosine heads at s = 30), each trained with LDAM-DRW, plus
the authors' KL diversity term (factor -0.45 and temperature 1 on CIFAR; under DRW the temperature
is per class, ``C pi_c 0.05 + 0.95`` over its maximum), as frank-xwang/RIDE-LongTailRecognition's
``RIDELoss``. The prediction is the mean of the experts' logits.

Left out: the distillation from a larger RIDE and the expert-assignment router (which saves
compute by consulting fewer experts; it does not change the 3-expert accuracy much per the paper).
The authors train 200 epochs with the LR x0.01 at epochs 160 and 180; ltray trains the study's
recipe with DRW from ``drw_frac`` of it (0.8 = epoch 160 of 200)."""

from ltray.core.losses import drw_weights, ride_class_temperature, ride_loss
from ltray.methods import Method, register


def _loss(counts, epochs, hp, teacher=None):
    drw_epoch = int(round(hp["drw_frac"] * epochs))
    weight = drw_weights(counts, hp["beta"]).float()
    class_t = ride_class_temperature(counts).float()

    def loss(out, y, epoch, x):
        drw = epoch >= drw_epoch
        return ride_loss(out, y, counts, hp["max_m"], hp["s"], weight if drw else None, hp["diversity"],
                         hp["temperature"], class_t if drw else None)
    return loss


METHOD = register(Method(
    name="ride",
    summary="experts on a shared trunk, each LDAM-DRW, with a KL term that keeps them diverse",
    make_loss=_loss,
    defaults={"max_m": 0.5, "s": 30.0, "drw_frac": 0.8, "beta": 0.9999, "diversity": -0.45, "temperature": 1.0,
              "experts": 3},
    space=lambda trial: {"diversity": trial.suggest_float("diversity", -1.0, 0.0),
                         "temperature": trial.suggest_float("temperature", 0.5, 3.0)},
    head="cosine",
    logit_scale=lambda hp: hp["s"],
    experts=lambda hp: int(hp["experts"]),
))
