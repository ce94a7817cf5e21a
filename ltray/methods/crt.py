"""cRT, classifier re-training (Kang et al. ICLR 2020): freeze the backbone of a CE model trained
once per study, re-initialise the classifier and train it alone with class-balanced sampling."""

import dataclasses

from ltray.methods import Method, register
from ltray.methods.ce import ce_loss


def classifier_stage(recipe, hp):
    # a short classifier stage: no warm-up, cosine decay, one image per class on average per draw
    return dataclasses.replace(recipe, epochs=int(hp["epochs"]), warmup_epochs=0, schedule="cosine",
                               sampler="balanced", mixup_alpha=0.0)


METHOD = register(Method(
    name="crt",
    summary="cRT: frozen CE backbone, classifier re-trained with class-balanced sampling",
    make_loss=ce_loss,
    defaults={"epochs": 10},
    space=lambda trial: {"epochs": trial.suggest_int("epochs", 5, 30)},
    backbone_from="ce",
    recipe=classifier_stage,
))
