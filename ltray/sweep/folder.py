"""The study folder before a run: what a new run may start in (nothing an earlier run left), what
``--resume`` may continue (the same experiment, field for field), and the study's own files
(``experiment.py``, ``experiment.json``, ``requirements.txt``), written once Ray is up. No Ray here.
"""

from __future__ import annotations

import json
import subprocess
import sys

from ltray.config import Experiment, to_dict
from ltray.errors import LtrayError
from ltray.results.storage import join, open_store, shown
from ltray.sweep import lease

# what a run leaves in a study folder; any of it means a run was here
LEFTOVERS = ("experiment.json", "trials", "epochs", "claims", "search", "ended", "optuna.db", "checkpoints", "ray")


def check(exp: Experiment, study_dir: str, resume: bool, run_id: str = "") -> None:
    """A new run needs a folder with nothing of an earlier run in it; a resumed one, a study
    started with this same experiment; either, a study no other live run holds (``run_id``:
    this run's, once it holds the lease). One LtrayError that says what to do; nothing written."""
    store = open_store(study_dir)
    held = lease.read(study_dir) if store.is_dir() else None
    if held is not None and held.run_id != run_id and not lease.stale(held):
        raise LtrayError(f"{shown(study_dir)} is in use by {held.describe()}; wait for it to end, or stop it "
                         "(nothing was changed)")
    here = [name for name in LEFTOVERS if store.exists(name)] if store.is_dir() else []  # lease.json aside
    if not resume:
        if here:
            raise LtrayError(f"{shown(study_dir)} holds an earlier run's files ({', '.join(here)}); pass --resume "
                             "to continue that study, or --name to start a new one (nothing was changed)")
        return
    if not here:
        raise LtrayError(f"--resume: no study at {shown(study_dir)}")
    if not store.is_file("experiment.json"):
        raise LtrayError(f"--resume: {shown(join(study_dir, 'experiment.json'))} is missing, so the experiment cannot be "
                         "checked against the one the study started with; put it back (or start a new study with "
                         "--name) (nothing was changed)")
    try:
        saved = json.loads(store.read_bytes("experiment.json"))
    except ValueError as e:
        raise LtrayError(f"--resume: {shown(join(study_dir, 'experiment.json'))} is damaged ({e}); put back a good "
                         "copy (nothing was changed)") from None
    changed = differences(saved, exp)
    if changed:
        raise LtrayError(f"--resume: the experiment differs from the one {shown(study_dir)} was started with: "
                         + "; ".join(changed[:8]) + (f"; and {len(changed) - 8} more" if len(changed) > 8 else "")
                         + ". Resume with the same file and --set values (nothing was changed)")


def differences(saved: dict, exp: Experiment) -> list[str]:
    """``field: started X, now Y`` for every field of ``exp`` that differs from the study's
    experiment.json. A field added to ltray since the study started, which the file lacks, is
    no difference while it holds its default."""
    now = json.loads(json.dumps(to_dict(exp), default=list))
    default = json.loads(json.dumps(to_dict(Experiment()), default=list))
    out: list[str] = []
    _diff(saved, now, default, "", out)
    return out


def _diff(saved: dict, now: dict, default: dict, prefix: str, out: list[str]) -> None:
    for k in sorted(set(saved) | set(now)):
        name = f"{prefix}{k}"
        if k not in now:
            out.append(f"{name}: started {saved[k]!r}, now unknown to this ltray")
        elif k not in saved:
            if now[k] != default.get(k):
                out.append(f"{name}: new in this ltray, set to {now[k]!r}")
        elif isinstance(now[k], dict) and isinstance(saved[k], dict):
            _diff(saved[k], now[k], default.get(k) if isinstance(default.get(k), dict) else {}, name + ".", out)
        elif saved[k] != now[k]:
            out.append(f"{name}: started {saved[k]!r}, now {now[k]!r}")


def write_study_files(exp: Experiment, source: str, study_dir: str) -> None:
    store = open_store(study_dir)
    with open(source, "rb") as f:
        store.write_bytes(f.read(), "experiment.py")
    store.write_bytes(json.dumps(to_dict(exp), indent=2, default=list).encode(), "experiment.json")
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    store.write_bytes(freeze.encode(), "requirements.txt")


def take(study_dir: str, exp: Experiment, resume: bool) -> lease.Lease:
    """The study's lease, then the folder checked again under it (a run that ended while this one
    started may have left its files); a refused new study leaves no folder behind."""
    store = open_store(study_dir)
    created = not store.is_dir()
    held = lease.acquire(study_dir)
    try:
        check(exp, study_dir, resume, held.run_id)
    except LtrayError:
        lease.release(study_dir, held)
        if created and store.local and not store.listdir():
            store.fs.delete_dir(store.root)
        raise
    return held
