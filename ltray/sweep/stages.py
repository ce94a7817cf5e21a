"""Stages shared by the trials of a study: something trained once that trials build on. Three
kinds: a trained ``model`` of some method (DiVE's teacher, cRT's backbone) and a ``rotation``
pre-trained backbone (SSP). A stage is keyed by its content (kind, method, data, model, recipe,
pre-training, seed), stored under ``<study>/stages/<key>/state.pt`` and recorded once in the
``stages`` table. Concurrent trials (and DDP ranks) wait on a file lock instead of training it
twice. No Ray here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import time

import torch

from ltray import results as R
from ltray.config import Experiment, Recipe, stage_recipes
from ltray.datasets import DataBundle, DataConfig
from ltray.methods import get_method
from ltray.models import build_model
from ltray.results.provenance import now
from ltray.results.storage import local_folder, open_store
from ltray.train import CHECKPOINT_FILE, ModelStart, fit, read_checkpoint
from ltray.train.ssp import pretrain_rotation


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """What a study's shared stages are built from (the fields of the experiment they need)."""

    study: str
    """Study name (the stages table's key)."""
    study_dir: str
    """The study folder: stages live under <study_dir>/stages/<key>/."""
    data: DataConfig
    """The data config of the trial's repeat (its subset is part of every stage's key)."""
    model: str
    """Model name."""
    pretrain: str
    """Self-supervised pre-training ("" or "rotation")."""
    pretrain_recipe: Recipe
    """The recipe of the rotation pre-training (the study's recipe)."""
    recipes: dict[str, Recipe]
    """The recipe every method a stage may train trains with (``ltray.config.stage_recipes``:
    recipe_overrides and the method's own changes included); part of the stage's key."""

    @classmethod
    def build(cls, exp: Experiment, study_dir: str, data: DataConfig) -> StagePlan:
        return cls(study=exp.name, study_dir=study_dir, data=data, model=exp.model.name, pretrain=exp.pretrain,
                   pretrain_recipe=exp.train, recipes=stage_recipes(exp))


def stage_key(kind: str, method: str, plan: StagePlan, recipe: Recipe, subset_hash: str, seed: int) -> str:
    """Same kind, method, data (and subset), model, recipe, pre-training and seed -> same stage."""
    blob = json.dumps({"kind": kind, "method": method, "data": dataclasses.asdict(plan.data), "subset": subset_hash,
                       "model": plan.model, "train": dataclasses.asdict(recipe), "pretrain": plan.pretrain,
                       "seed": seed}, sort_keys=True, default=list)
    return f"{kind}-{method or 'none'}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _stage(plan: StagePlan, key: str, kind: str, method: str, seed: int, subset_hash: str, trial_id: str,
           train) -> dict:
    """Load the stage's checkpoint, training it first (under the lock) if no one has."""
    store = open_store(plan.study_dir)
    with _lock(plan.study_dir, key):  # one trainer; the others wait, then load
        if not store.is_file("stages", key, CHECKPOINT_FILE):
            t0 = time.time()
            state, history, val, test = train()
            buf = io.BytesIO()
            torch.save({"model": state, "optimizer": {}, "epoch": len(history) - 1, "best_val": val,
                        "best_epoch": len(history) - 1, "history": history, "best_state": state}, buf)
            store.write_bytes(buf.getvalue(), "stages", key, CHECKPOINT_FILE)
            row = {"study": [plan.study], "key": [key], "kind": [kind], "method": [method], "trained_by": [trial_id],
                   "seed": [seed], "subset_hash": [subset_hash], "wall_s": [time.time() - t0],
                   "val_bal_acc": [val], "test_bal_acc": [test],
                   "finished_at": [now()]}
            R.write_table(plan.study_dir, "stages", key, R.table("stages", row))
        data = store.read_bytes("stages", key, CHECKPOINT_FILE)
    return read_checkpoint(io.BytesIO(data), store.uri_of("stages", key, CHECKPOINT_FILE))["best_state"]


@contextlib.contextmanager
def _lock(study_dir: str, key: str):
    """An exclusive lock on a stage: a file lock in the stage's folder, which every process of a
    local (or NFS) study shares. An object store has no locks: there the lock is per node (a
    local file), so two nodes starting at once may each train the stage; both write the same
    content under the same key, and the trials load whichever landed last."""
    store = open_store(study_dir)
    if store.local:
        folder = store.path("stages", key)
    else:
        folder = local_folder("ltray-stage-locks", store.uri_of("stages", key))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def get_pretrained(plan: StagePlan, data: DataBundle, seed: int, device, trial_id: str) -> dict | None:
    """The study's pre-trained backbone state (``plan.pretrain``), or None without pre-training."""
    if not plan.pretrain:
        return None

    def train():
        state, history = pretrain_rotation(data, plan.model, plan.pretrain_recipe, seed, device)
        return state, history, float("nan"), float("nan")

    key = stage_key("rotation", "", plan, plan.pretrain_recipe, data.subset_hash, seed)
    return _stage(plan, key, "rotation", "", seed, data.subset_hash, trial_id, train)


def get_trained(plan: StagePlan, data: DataBundle, method: str, seed: int, device, trial_id: str
                ) -> tuple[torch.nn.Module, str]:
    """A model trained with ``method`` once per study (from the pre-trained backbone if any):
    DiVE's teacher, cRT's backbone. It trains with ``method``'s recipe at its defaults
    (``plan.recipes``), which is part of the stage's key."""
    m = get_method(method)
    recipe = plan.recipes[method]
    key = stage_key("model", method, plan, recipe, data.subset_hash, seed)

    def train():
        init = get_pretrained(plan, data, seed, device, trial_id)
        res = fit(data, m, None, ModelStart(name=plan.model, init_backbone=init), recipe, seed=seed, device=device,
                  distributed=False)
        return res.state_dict, res.history, res.metrics["val_bal_acc"], res.metrics["test_bal_acc"]

    state = _stage(plan, key, "model", method, seed, data.subset_hash, trial_id, train)
    in_ch, in_dim = data.input_shape
    net = build_model(plan.model, data.num_classes, in_ch, head=m.head, in_dim=in_dim)
    net.load_state_dict(state)
    return net.to(device).eval(), key


def backbone_state(net: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in net.backbone.state_dict().items()}
