"""DiVE (He et al. ICCV 2021): distil a balanced-softmax teacher's virtual examples, tempered by
tau and flattened by power p, into a student trained with BSCE: a * tau^2 * KL + (1 - a) * BSCE.
The teacher is trained once per study (same data, seed, model and recipe) and shared."""

import numpy as np
import torch

from ltray.core.losses import dive_loss
from ltray.core.metrics import virtual_example_distribution as ved
from ltray.methods import Method, register


def _loss(counts, epochs, hp, teacher=None):
    if teacher is None:
        raise ValueError("dive needs its teacher (trained by ltray.stages)")
    teacher.eval()

    def loss(out, y, epoch, x):
        with torch.no_grad():  # teacher in eval mode, on the student's augmented batch
            t = teacher(x)
        return dive_loss(out, t, y, counts, hp["tau"], hp["power"], hp["a"])

    return loss


def _virtual(hp, teacher_logits, counts) -> dict:
    """The teacher's virtual example distribution on the training images: raw, tempered by tau,
    and tempered + power-normalised (what the student distils); one row per class."""
    C = len(counts)
    return {"virtual": {"class_id": list(range(C)), "train_count": np.asarray(counts).tolist(),
                        "raw": ved(teacher_logits).tolist(), "tempered": ved(teacher_logits, hp["tau"]).tolist(),
                        "power_normalised": ved(teacher_logits, hp["tau"], hp["power"]).tolist()}}


METHOD = register(Method(
    name="dive",
    summary="DiVE: distil a BSCE teacher's tempered, power-normalised virtual examples",
    make_loss=_loss,
    defaults={"tau": 3.0, "power": 0.5, "a": 0.5},
    space=lambda trial: {"tau": trial.suggest_float("tau", 1.0, 6.0),
                         "power": trial.suggest_float("power", 0.2, 1.0),
                         "a": trial.suggest_float("a", 0.1, 0.9)},
    balanced_logits=True,
    teacher="balanced_softmax",
    extra_tables=_virtual,
))
