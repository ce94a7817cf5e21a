"""Methods by name. A method is one small file: its loss, its head, whether its logits already
remove the training prior, and its search space (define-by-run on an Optuna-like trial).

Registering a method (``register``) makes it available to the CLI, the sweep and the shared
parametrized tests in tests/test_methods.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ltray.errors import LtrayError

# (outputs (N, C), labels (N,), epoch, augmented inputs) -> scalar loss
LossFn = Callable[[torch.Tensor, torch.Tensor, int, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Method:
    name: str
    """Registry name, e.g. "balanced_softmax"."""
    summary: str
    """One line for --help and the README."""
    make_loss: Callable[..., LossFn]
    """(train counts (C,), total epochs, hyperparameters, teacher module or None) -> loss function."""
    defaults: dict = field(default_factory=dict)
    """Hyperparameters and their default values."""
    space: Callable[[Any], dict] = lambda trial: {}
    """Define-by-run search space: samples this method's knobs from an Optuna-like trial."""
    head: str = "linear"
    """Classifier head: "linear" or "cosine" (LDAM)."""
    balanced_logits: bool = False
    """True when training already removes the training prior from the logits (LA, BSCE, LADE):
    post-hoc rules then add only the target prior instead of dividing the train prior out again."""
    logit_scale: Callable[[dict], float] = lambda hp: 1.0
    """Multiplier turning model outputs into logits for evaluation (LDAM's cosine scale s)."""
    teacher: str = ""
    """Method of a teacher trained once per study and shared by every trial (DiVE: balanced_softmax)."""
    backbone_from: str = ""
    """Method whose trained backbone is frozen and reused, only the classifier is trained (cRT: ce)."""
    keep_head: bool = False
    """With backbone_from: also start from that model's linear classifier (weight balancing trains
    it on; an LWS head keeps it frozen under its per-class scales)."""
    prepare: Callable[[Any, dict], None] | None = None
    """(model, hyperparameters) -> None, once after the model is built from its start (a stage's
    classifier loaded) and before the optimiser sees it: class-balanced focal's bias, weight
    balancing's MaxNorm radius from the stage-1 classifier."""
    after_epoch: Callable[[Any, dict], None] | None = None
    """(model, hyperparameters) -> None, after every epoch's steps (weight balancing's MaxNorm projection)."""
    decay_head_bias: bool = True
    """False: the classifier's bias gets no weight decay (class-balanced focal, as its authors)."""
    mixup: Callable[[dict], float] = lambda hp: 0.0
    """mixup alpha this method trains with (0 = none)."""
    mix_weights: Callable[[dict, torch.Tensor], Callable] | None = None
    """With mixup: (hyperparameters, train counts (C,)) -> (lambda, labels (B,), partner labels (B,))
    -> per-sample weight (B,) of the first label in a mixed image's CE (Remix); None: lambda."""
    experts: Callable[[dict], int] = lambda hp: 0
    """How many experts the model has (``ltray.models.Experts``: a shared trunk, one branch and head
    per expert; the loss then gets every expert's outputs, (N, E, C)); 0: one model."""
    test_time_views: int = 0
    """> 0: after training, also store that many epochs of two augmented views' expert logits on the
    test images, for test-time aggregation on each shifted test set (SADE: 5; transductive)."""
    recipe: Callable[[Any, dict], Any] = lambda recipe, hp: recipe
    """Adjusts the study's recipe for this method (cRT: a short, class-balanced classifier stage)."""
    extra_tables: Callable[[dict, Any, Any], dict] = lambda hp, teacher_logits, counts: {}
    """(hyperparameters, the teacher's logits (N_train, C) on the training images or None, train
    counts (C,)) -> {table: columns} of the method's own tables (DiVE: "virtual"); the trial adds
    its key columns (study, trial_id, stage)."""

    def hp(self, overrides: dict | None = None) -> dict:
        """Defaults updated with ``overrides``; unknown keys are an error."""
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise LtrayError(f"method {self.name!r} has no hyperparameter {', '.join(sorted(unknown))}; "
                             f"it has: {', '.join(self.defaults) or 'none'}")
        return {**self.defaults, **overrides}


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in _REGISTRY:
        raise ValueError(f"method {method.name!r} registered twice")
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in _REGISTRY:
        raise LtrayError(f"unknown method {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def logits_are_balanced(method: Method, recipe) -> bool:
    """Whether a trial's logits have the training prior removed, from what it trained with: a
    balanced loss (LA, BSCE, LADE, DiVE) or class-balanced sampling (cRT, or any method with
    ``train.sampler=balanced``, or ending with it: DRS), which shows the classifier a uniform
    label prior."""
    return method.balanced_logits or recipe.sampler == "balanced" or recipe.resample_from < 1


def prior_of(counts: torch.Tensor) -> torch.Tensor:
    c = counts.double()
    return c / c.sum()


# Importing the method files registers them.
from ltray.methods import (balanced_softmax, balpoe, bsce_cbs, cb_ce, cb_focal, ce, crt, dive, drs, equalization, focal, lade,  # noqa: E402,F401,I001
                           ldam_drw, logit_adjusted, lws, mixup, remix, reweight, ride, sade, weight_balancing)
