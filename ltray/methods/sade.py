"""SADE (Zhang et al. NeurIPS 2022, "Self-Supervised Aggregation of Diverse Experts"): three
experts on a shared trunk (``ltray.models.Experts``, cosine heads at scale s = 30), trained jointly
with the sum of CE, balanced softmax and inverse softmax (tau = 2), as the authors' CIFAR
configuration (Vanint/SADE-AgnosticLT, ``DiverseExpertLoss``). The prediction is the mean of the
experts' logits (equal weights: the inductive result). The shifted test sets also get SADE's
test-time self-supervised aggregation (``ltray.core.aggregation``), stored as the rule
``sade_tta``: it learns the experts' weights on each shifted set's unlabelled test images, so it
is a transductive result. Its two views per epoch use the dataset's training augmentation (the
authors add colour jitter, grayscale and blur, which mean little on 28x28 grey images).

Where ltray differs: the authors train 200 epochs with nesterov SGD and pick the checkpoint on the
test set (their CIFAR validation set); ltray trains the study's recipe and selects on validation."""

from ltray.core.losses import sade_loss
from ltray.methods import Method, prior_of, register

METHOD = register(Method(
    name="sade",
    summary="three experts (CE, balanced, inverse softmax) on a shared trunk, mean of their logits",
    make_loss=lambda counts, epochs, hp, teacher=None: (
        lambda out, y, epoch, x, prior=prior_of(counts).float(): sade_loss(hp["s"] * out, y, prior, hp["tau"])),
    defaults={"tau": 2.0, "s": 30.0},
    space=lambda trial: {"tau": trial.suggest_float("tau", 1.0, 3.0)},
    head="cosine",
    logit_scale=lambda hp: hp["s"],
    # the equal-weight mean of a CE, a balanced and an inverse expert is meant for the uniform test
    balanced_logits=True,
    experts=lambda hp: 3,
    test_time_views=5,  # the authors' 5 epochs of test-time aggregation
))
