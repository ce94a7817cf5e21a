"""Stages shared by the trials of a study: a model one method trains once and others build on
(DiVE's teacher). A stage is keyed by its content (data, model, recipe, seed, method), stored
under ``<study>/stages/<key>/`` and recorded once in the ``stages`` table. Concurrent trials
(and DDP ranks) wait on a file lock instead of training it twice. No Ray here.
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
from ltray.methods import get_method
from ltray.models import build_model
from ltray.train import fit, load_checkpoint, save_checkpoint


def stage_key(kind: str, method: str, exp, seed: int) -> str:
    """Same data, model, recipe, seed and method -> same stage."""
    blob = json.dumps({"kind": kind, "method": method, "data": dataclasses.asdict(exp.data),
                       "model": dataclasses.asdict(exp.model), "train": dataclasses.asdict(exp.train), "seed": seed},
                      sort_keys=True, default=list)
    return f"{kind}-{method}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def get_teacher(study_dir: str, exp, data: DataBundle, method: str, seed: int, device, trial_id: str,
                log=None) -> tuple[torch.nn.Module, str]:
    """The trained teacher of ``method`` for this study, training it first if no trial has."""
    key = stage_key("teacher", method, exp, seed)
    folder = os.path.join(study_dir, "stages", key)
    os.makedirs(folder, exist_ok=True)
    m = get_method(method)
    with open(os.path.join(folder, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one trainer; the others wait, then load
        path = os.path.join(folder, "state.pt")
        if not os.path.isfile(path):
            t0 = time.time()
            res = fit(data, m, None, exp.model.name, exp.train, seed=seed, device=device, distributed=False, log=log)
            save_checkpoint(folder, {"model": res.state_dict, "optimizer": {}, "epoch": exp.train.epochs - 1,
                                     "best_val": res.metrics["val_bal_acc"], "best_epoch": res.best_epoch,
                                     "history": res.history, "best_state": res.state_dict})
            row = {"study": [exp.name], "key": [key], "kind": ["teacher"], "method": [method], "trained_by": [trial_id],
                   "seed": [seed], "subset_hash": [data.subset_hash], "wall_s": [time.time() - t0],
                   "val_bal_acc": [res.metrics["val_bal_acc"]], "test_bal_acc": [res.metrics["test_bal_acc"]],
                   "finished_at": [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())]}
            R.write_table(study_dir, "stages", key, R.table("stages", row))
        ck = load_checkpoint(folder)
    in_ch = data.train.x.shape[1] if data.in_memory and data.train.x.ndim == 4 else 3
    in_dim = int(torch.tensor(data.train.x.shape[1:]).prod()) if data.in_memory else 0
    net = build_model(exp.model.name, data.num_classes, in_ch, m.head, in_dim)
    net.load_state_dict(ck["best_state"])
    return net.to(device).eval(), key
