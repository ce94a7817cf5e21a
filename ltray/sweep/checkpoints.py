"""A trial's epoch checkpoints, kept in the study itself (``checkpoints/<trial>/state.pt``,
through its ``Store``: a folder or a URI), not in Tune's or Train's state: whatever restarts a
trial (Train after a worker died, Tune after an in-process trial's process did, ``--resume``
after the driver did) finds its last one by the trial's id. Rank 0 writes it before the epoch
is reported, so a kill never leaves a reported epoch without its checkpoint. A trial that
finished has its checkpoint removed.

A study started by ltray 0.1 kept an in-process trial's checkpoints in Tune's trial folder
(``ray/tune/run_trial_<trial>_*/checkpoint_*``): the newest there is found too. No Ray here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import pyarrow.fs as pafs

from ltray.results.storage import open_store
from ltray.train.checkpoint import CHECKPOINT_FILE


def save(study_dir: str, trial_id: str, folder: str) -> None:
    """Keep the checkpoint ``fit`` just wrote in ``folder`` (atomically: a reader sees the previous one or this)."""
    with open(os.path.join(folder, CHECKPOINT_FILE), "rb") as f:
        open_store(study_dir).write_bytes(f.read(), "checkpoints", trial_id, CHECKPOINT_FILE)


def latest(study_dir: str, trial_id: str) -> str | None:
    """A local folder holding the trial's last checkpoint (the caller removes it), or None."""
    store = open_store(study_dir)
    found = ("checkpoints", trial_id, CHECKPOINT_FILE) if store.is_file("checkpoints", trial_id, CHECKPOINT_FILE) \
        else _in_tune_folder(store, trial_id)
    if found is None:
        return None
    folder = tempfile.mkdtemp(prefix="ltray-resume-")
    with open(os.path.join(folder, CHECKPOINT_FILE), "wb") as f:
        f.write(store.read_bytes(*found))
    return folder


def remove(study_dir: str, trial_id: str) -> None:
    store = open_store(study_dir)
    with contextlib.suppress(OSError):
        store.fs.delete_dir(store.path("checkpoints", trial_id))


def _in_tune_folder(store, trial_id: str) -> tuple[str, ...] | None:
    """The newest checkpoint of the trial in Tune's trial folder (the layout of ltray 0.1)."""
    best = None
    for run in store.listdir("ray", "tune"):
        if run.type != pafs.FileType.Directory or not run.base_name.startswith(f"run_trial_{trial_id}_"):
            continue
        for ck in store.listdir("ray", "tune", run.base_name):
            parts = ("ray", "tune", run.base_name, ck.base_name, CHECKPOINT_FILE)
            if ck.base_name.startswith("checkpoint_") and store.is_file(*parts) and (best is None or parts > best):
                best = parts
    return best
