"""Class-balanced focal loss (Cui et al. CVPR 2019) as its authors' code computes it
(richardaecn/class-balanced-loss, ``src/cifar_main.py``): a *sigmoid* focal loss, each class a
binary problem, summed over the C classes and divided by N, every term of an example weighted by
its class's effective-number weight (normalised to sum to C); the classifier's bias starts at
``-log(C - 1)`` (each class's sigmoid at 1/C, ``src/model_base.py``) and gets no weight decay.
beta = 0.9999, gamma = 1.0: their CIFAR-10-LT script.

Where ltray differs: predictions are the argmax of the logits, as theirs; ECE, temperature
scaling and the post-hoc rules read the logits through softmax, as for every method. (Before
ltray 0.3 this was a softmax focal loss with the same weights.)"""

import math

import torch

from ltray.core.losses import drw_weights, sigmoid_focal_loss
from ltray.methods import Method, register


def _loss(counts, epochs, hp, teacher=None):
    weight = drw_weights(counts, hp["beta"]).float()

    def loss(out, y, epoch, x):
        return sigmoid_focal_loss(out, y, hp["gamma"], weight)

    return loss


@torch.no_grad()
def sigmoid_prior_bias(net, hp) -> None:
    """The authors' start: every class's sigmoid at 1/C, ``b_c = -log(C - 1)``."""
    C = net.head.bias.numel()
    net.head.bias.fill_(-math.log(C - 1) if C > 1 else 0.0)


METHOD = register(Method(
    name="cb_focal",
    summary="class-balanced focal loss (sigmoid, as the authors): effective-number weights (beta), focusing gamma",
    make_loss=_loss,
    defaults={"beta": 0.9999, "gamma": 1.0},
    space=lambda trial: {"beta": trial.suggest_float("beta", 0.99, 0.99999),
                         "gamma": trial.suggest_float("gamma", 0.5, 2.0)},
    prepare=sigmoid_prior_bias,
    decay_head_bias=False,
))
