"""mixup (Zhang et al. 2018) with plain CE: convex mixes of image pairs and their labels. For
mixup on top of any other method, set train.mixup_alpha in the experiment instead."""

from ltray.core.losses import cross_entropy
from ltray.methods import Method, register

METHOD = register(Method(
    name="mixup",
    summary="mixup with CE (train.mixup_alpha adds it to any method)",
    make_loss=lambda counts, epochs, hp, teacher=None: lambda out, y, epoch, x: cross_entropy(out, y),
    defaults={"alpha": 1.0},
    space=lambda trial: {"alpha": trial.suggest_float("alpha", 0.1, 2.0)},
    mixup=lambda hp: hp["alpha"],
))
