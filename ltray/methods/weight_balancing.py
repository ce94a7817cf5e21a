"""Weight balancing (Alshammari et al. CVPR 2022), two stages, as its authors' code runs them
(ShadeAlsha/LTR-weight-balancing, ``demo1``/``demo2`` and ``utils/``).

Stage 1, ``ce_wd``: CE with a tuned, larger weight decay (5e-3, their CIFAR-LT value), trained
once per study. Stage 2, ``wb``: the stage-1 backbone frozen, its classifier trained on with
class-balanced *binary* cross-entropy on the softmax probabilities (effective-number weights,
beta 0.9999, averaged over N x C: their ``CB_loss(..., "softmax")``), weight decay 0.1 (theirs),
10 cosine epochs, and MaxNorm: once per epoch, every class weight row longer than the radius is
scaled back to it, the radius set once from the stage-1 classifier's row norms as
``min + thresh (max - min)`` with thresh = 0.1 (``utils/regularizers.py``, ``MaxNorm_via_PGD``);
the bias is never projected.

Where ltray differs: the backbone's BatchNorm statistics stay frozen in stage 2 (theirs update
them, as their whole model is in train mode; ltray freezes a frozen backbone entirely, as cRT);
the epoch is chosen on validation (theirs on test); the per-epoch cosine starts at the full
learning rate (theirs steps before each epoch: its first epoch already decays, its last runs at 0)."""

import dataclasses

import torch

from ltray.core.losses import drw_weights, softmax_bce_loss
from ltray.methods import Method, register
from ltray.methods.ce import ce_loss


def _stage1_recipe(recipe, hp):
    return dataclasses.replace(recipe, weight_decay=hp["wd"])


def _stage2_recipe(recipe, hp):
    # a short classifier stage on instance-balanced batches (the loss re-weights), no warm-up, cosine
    return dataclasses.replace(recipe, epochs=int(hp["epochs"]), warmup_epochs=0, schedule="cosine", sampler="random",
                               weight_decay=hp["wd"], mixup_alpha=0.0)


def _stage2_loss(counts, epochs, hp, teacher=None):
    weight = drw_weights(counts, hp["beta"]).float()

    def loss(out, y, epoch, x):
        return softmax_bce_loss(out, y, weight)

    return loss


@torch.no_grad()
def max_norm_radius(net, hp) -> None:
    """MaxNorm's radius from the classifier the stage starts from (stage 1's), kept with the model."""
    norms = net.head.weight.norm(p=2, dim=1)
    radius = norms.min() + hp["thresh"] * (norms.max() - norms.min())
    net.head.register_buffer("max_norm_radius", radius.detach().clone())


@torch.no_grad()
def max_norm(net, hp) -> None:
    """Scale every class weight row longer than the radius back onto it (shorter rows unchanged)."""
    w, radius = net.head.weight, net.head.max_norm_radius
    norms = w.norm(p=2, dim=1, keepdim=True)
    w.mul_(torch.where(norms > radius, radius / norms, torch.ones_like(norms)))


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
    summary="weight balancing: stage-1 ce_wd backbone, classifier fine-tuned with class-balanced BCE + MaxNorm",
    make_loss=_stage2_loss,
    defaults={"epochs": 10, "wd": 0.1, "beta": 0.9999, "thresh": 0.1},
    space=lambda trial: {"epochs": trial.suggest_int("epochs", 5, 30),
                         "thresh": trial.suggest_float("thresh", 0.0, 1.0)},
    backbone_from="ce_wd",
    keep_head=True,
    prepare=max_norm_radius,
    after_epoch=max_norm,
    balanced_logits=True,
    recipe=_stage2_recipe,
))
