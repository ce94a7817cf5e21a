"""mixup (Zhang et al. 2018) with plain CE: convex mixes of image pairs and their labels. For
mixup on top of any other method, set train.mixup_alpha in the experiment instead."""

from ltray.methods import Method, register
from ltray.methods.ce import ce_loss

METHOD = register(Method(
    name="mixup",
    summary="mixup with CE (train.mixup_alpha adds it to any method)",
    make_loss=ce_loss,
    defaults={"alpha": 1.0},
    space=lambda trial: {"alpha": trial.suggest_float("alpha", 0.1, 2.0)},
    mixup=lambda hp: hp["alpha"],
))
