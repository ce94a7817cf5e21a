"""Deferred re-sampling, DRS (Cao et al. NeurIPS 2019): instance-balanced batches first, then
class-balanced batches from the same epoch DRW would switch at (80% of training), with CE.

The class-balanced batches are Kang et al.'s sampler (a class picked uniformly, ``p = 1/C``, then
an image of it), which draws from the same distribution as the re-sampling weights ``1/n_c`` of
Cao's code; the two differ only in how the draws are made."""

import dataclasses

from ltray.methods import Method, register
from ltray.methods.ce import ce_loss



METHOD = register(Method(
    name="drs",
    summary="deferred re-sampling: class-balanced batches from a fraction of training on",
    make_loss=ce_loss,
    defaults={"drs_frac": 0.8},
    space=lambda trial: {"drs_frac": trial.suggest_float("drs_frac", 0.5, 0.9)},
    recipe=lambda recipe, hp: dataclasses.replace(recipe, resample_from=hp["drs_frac"]),
))
