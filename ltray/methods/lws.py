"""LWS, learnable weight scaling (Kang et al. ICLR 2020, decoupling): keep a CE model trained
once per study, backbone and linear classifier frozen, and learn only one scale per class with
class-balanced sampling; the same short classifier stage as cRT.

The schedule matches the authors' in distribution, not in epochs: ltray's stage is ``epochs``
(10) epochs of N draws each (N = training images), a class picked uniformly then an image of it
(Kang's ``ClassAwareSampler``, ``p = 1/C`` per class); the authors' LWS config runs 5 epochs of
C x n_max draws. Either way every draw is class-balanced; the number of draws is the knob."""

from ltray.methods import Method, register
from ltray.methods.ce import ce_loss
from ltray.methods.crt import classifier_stage



METHOD = register(Method(
    name="lws",
    summary="LWS: frozen CE model, per-class classifier scales learned with class-balanced sampling",
    make_loss=ce_loss,
    defaults={"epochs": 10},
    space=lambda trial: {"epochs": trial.suggest_int("epochs", 5, 30)},
    head="lws",
    backbone_from="ce",
    keep_head=True,
    recipe=classifier_stage,
))
