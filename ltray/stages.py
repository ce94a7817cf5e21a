"""Stages shared by the trials of a study: something trained once that trials build on. Three
kinds: a trained ``model`` of some method (DiVE's teacher, cRT's backbone) and a ``rotation``
pre-trained backbone (SSP). A stage is keyed by its content (kind, method, data, model, recipe,
pre-training, seed), stored under ``<study>/stages/<key>/state.pt`` and recorded once in the
``stages`` table. Concurrent trials (and DDP ranks) wait on a file lock instead of training it
twice. No Ray here.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time

import torch

from ltray import results as R
from ltray.data import DataBundle
from ltray.experiment import effective_recipe
from ltray.methods import get_method
from ltray.models import build_model
from ltray.train import fit, load_checkpoint, save_checkpoint


def stage_key(kind: str, method: str, exp, recipe, subset_hash: str, seed: int) -> str:
    """Same kind, method, data (and subset), model, recipe, pre-training and seed -> same stage."""
    blob = json.dumps({"kind": kind, "method": method, "data": dataclasses.asdict(exp.data), "subset": subset_hash,
                       "model": dataclasses.asdict(exp.model), "train": dataclasses.asdict(recipe),
                       "pretrain": exp.pretrain, "seed": seed}, sort_keys=True, default=list)
    return f"{kind}-{method or 'none'}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _stage(study_dir: str, key: str, kind: str, method: str, exp, seed: int, subset_hash: str, trial_id: str,
           train) -> dict:
    """Load the stage's checkpoint, training it first (under the lock) if no one has."""
    folder = os.path.join(study_dir, "stages", key)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one trainer; the others wait, then load
        if not os.path.isfile(os.path.join(folder, "state.pt")):
            t0 = time.time()
            state, history, val, test = train()
            save_checkpoint(folder, {"model": state, "optimizer": {}, "epoch": len(history) - 1, "best_val": val,
                                     "best_epoch": len(history) - 1, "history": history, "best_state": state})
            row = {"study": [exp.name], "key": [key], "kind": [kind], "method": [method], "trained_by": [trial_id],
                   "seed": [seed], "subset_hash": [subset_hash], "wall_s": [time.time() - t0],
                   "val_bal_acc": [val], "test_bal_acc": [test],
                   "finished_at": [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())]}
            R.write_table(study_dir, "stages", key, R.table("stages", row))
        return load_checkpoint(folder)["best_state"]


def get_pretrained(study_dir: str, exp, data: DataBundle, seed: int, device, trial_id: str) -> dict | None:
    """The study's pre-trained backbone state (``exp.pretrain``), or None without pre-training."""
    if not exp.pretrain:
        return None
    from ltray.ssp import pretrain_rotation

    def train():
        state, history = pretrain_rotation(data, exp.model.name, exp.train, seed, device)
        return state, history, float("nan"), float("nan")

    key = stage_key("rotation", "", exp, exp.train, data.subset_hash, seed)
    return _stage(study_dir, key, "rotation", "", exp, seed, data.subset_hash, trial_id, train)


def get_trained(study_dir: str, exp, data: DataBundle, method: str, seed: int, device, trial_id: str
                ) -> tuple[torch.nn.Module, str]:
    """A model trained with ``method`` once per study (from the pre-trained backbone if any):
    DiVE's teacher, cRT's backbone. It trains with ``method``'s effective recipe (its
    ``recipe_overrides`` included), which is part of the stage's key."""
    m = get_method(method)
    recipe = effective_recipe(exp, method)
    key = stage_key("model", method, exp, recipe, data.subset_hash, seed)

    def train():
        init = get_pretrained(study_dir, exp, data, seed, device, trial_id)
        res = fit(data, m, None, exp.model.name, recipe, seed=seed, device=device, distributed=False,
                  init_backbone=init)
        return res.state_dict, res.history, res.metrics["val_bal_acc"], res.metrics["test_bal_acc"]

    state = _stage(study_dir, key, "model", method, exp, seed, data.subset_hash, trial_id, train)
    in_ch, in_dim = data.input_shape
    net = build_model(exp.model.name, data.num_classes, in_ch, head=m.head, in_dim=in_dim)
    net.load_state_dict(state)
    return net.to(device).eval(), key


def backbone_state(net: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in net.backbone.state_dict().items()}
