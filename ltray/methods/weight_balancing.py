"""Weight balancing (Alshammari et al. CVPR 2022), two stages. Stage 1, ``ce_wd``: CE with a tuned,
larger weight decay (5e-3, the paper's CIFAR-LT value), trained once per study. Stage 2, ``wb``:
the stage-1 backbone frozen, its classifier fine-tuned with class-balanced re-weighting (effective
number, beta 0.9999), the same weight decay, and MaxNorm: after every iteration each class's
weight vector is projected back into the ball of radius ``max_norm`` (0.1; projected gradient
descent, as the paper applies it)."""

import dataclasses

import torch

from ltray.methods import Method, register
from ltray.methods.cb_ce import class_balanced_loss
from ltray.methods.ce import ce_loss


def _stage1_recipe(recipe, hp):
    return dataclasses.replace(recipe, weight_decay=hp["wd"])


def _stage2_recipe(recipe, hp):
    # a short classifier stage on instance-balanced batches (the loss re-weights), no warm-up, cosine
    return dataclasses.replace(recipe, epochs=int(hp["epochs"]), warmup_epochs=0, schedule="cosine", sampler="random",
                               weight_decay=hp["wd"], mixup_alpha=0.0)


@torch.no_grad()
def max_norm(net, hp) -> None:
    """Project every class weight row of the linear head to norm <= max_norm."""
    w = net.head.weight
    w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=hp["max_norm"]))


CE_WD = register(Method(
    name="ce_wd",
    summary="CE with tuned (larger) weight decay: weight balancing's first stage",
    make_loss=ce_loss,
    defaults={"wd": 5e-3},
    space=lambda trial: {"wd": trial.suggest_float("wd", 5e-4, 1e-2, log=True)},
    recipe=_stage1_recipe,
))

WB = register(Method(
    name="wb",
    summary="weight balancing: stage-1 ce_wd backbone, classifier fine-tuned with class-balanced CE + MaxNorm",
    make_loss=class_balanced_loss,
    defaults={"epochs": 10, "wd": 5e-3, "beta": 0.9999, "max_norm": 0.1},
    space=lambda trial: {"epochs": trial.suggest_int("epochs", 5, 30),
                         "max_norm": trial.suggest_float("max_norm", 0.05, 1.0, log=True)},
    backbone_from="ce_wd",
    keep_head=True,
    after_step=max_norm,
    balanced_logits=True,
    recipe=_stage2_recipe,
))
