"""Tune's own saved state, kept whole: Tune saves its trial list, trial count and searcher in
the driver's staging folder, then uploads them to the study in the background, file by file. A
driver killed mid-upload leaves a torn set (a newer trial count than trial list: --resume then
never runs a trial), and a full disk truncates a file (Tune then silently starts the study
afresh). The progress callback copies each save's set whole to ray/tune/good/
(``snapshot_tune_state``); --resume puts it back (``restore_tune_state``). No Ray here.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow.fs as pafs

from ltray.results.storage import open_store

TUNE_STATE = ("experiment_state-", "search_gen_state-", "searcher-state-")  # the kinds of file of one save
TUNE_DIR = ("ray", "tune")
GOOD = (*TUNE_DIR, "good")
MANIFEST = "set.json"  # written last: names and sha256 of a whole set


def tune_state_files(folder: str, *parts: str) -> dict[str, bytes] | None:
    """The newest file of each kind (name -> bytes) in a local folder or a study's subfolder, if
    every one is whole (JSON parses; a pickle ends in STOP); None otherwise."""
    store = open_store(folder)
    names = [i.base_name for i in store.listdir(*parts) if i.type == pafs.FileType.File]
    files = {}
    try:
        for kind in TUNE_STATE:
            newest = max((n for n in names if n.startswith(kind)), default=None)
            if newest is None:
                return None
            data = store.read_bytes(*parts, newest)
            if kind == "experiment_state-":
                json.loads(data)
            elif not data.endswith(b"."):  # the others are pickles, whatever their suffix
                return None
            files[newest] = data
    except (OSError, ValueError):
        return None
    return files


def snapshot_tune_state(staging: str, study_dir: str) -> bool:
    """Copy the set Tune has just saved in its staging folder to the study's ray/tune/good/.
    Called while Tune saves, so the set is one save's, whole and consistent. Each file is kept
    under its checksum (an unchanged one is not uploaded again), the manifest naming the set is
    written after them, and the previous set is deleted only then: a copy cut off midway (the
    driver killed, a full disk) leaves the previous set whole."""
    files = tune_state_files(staging)
    if files is None:
        return False
    store = open_store(study_dir)
    manifest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    kept = {i.base_name for i in store.listdir(*GOOD)}
    for name, data in files.items():
        if _stored_as(name, manifest[name]) not in kept:
            store.write_bytes(data, *GOOD, _stored_as(name, manifest[name]))
    store.write_bytes(json.dumps(manifest, sort_keys=True).encode(), *GOOD, MANIFEST)
    for old in kept - {_stored_as(n, h) for n, h in manifest.items()} - {MANIFEST}:
        store.remove(*GOOD, old)
    return True


def _stored_as(name: str, sha: str) -> str:
    return f"{sha[:16]}.{name}"


def _snapshot(study_dir: str) -> tuple[dict[str, bytes] | None, bool]:
    """The set under ray/tune/good/ if its manifest matches every file, and whether it had one
    (a study from before the manifest: its whole set, which may be older than Tune's)."""
    store = open_store(study_dir)
    try:
        manifest = json.loads(store.read_bytes(*GOOD, MANIFEST))
    except FileNotFoundError:
        return tune_state_files(study_dir, *GOOD), False
    except (OSError, ValueError):
        return None, True
    try:
        files = {name: store.read_bytes(*GOOD, _stored_as(name, sha)) for name, sha in manifest.items()}
    except OSError:
        return None, True
    ok = all(hashlib.sha256(data).hexdigest() == manifest[name] for name, data in files.items())
    return (files if ok else None), True  # damaged: Tune's own set is all there is


def restore_tune_state(study_dir: str) -> None:
    """On --resume, before Tune restores: Tune's own set replaced by the snapshot where they
    differ (a torn or lagging upload, a truncated file). The snapshot is never older than Tune's
    last save, unless copying it failed (a warning then); a damaged own set is replaced anyway."""
    snap, checked = _snapshot(study_dir)
    own = tune_state_files(study_dir, *TUNE_DIR)
    if snap is None or own == snap or (own is not None and not checked):
        return
    store = open_store(study_dir)
    for info in store.listdir(*TUNE_DIR):
        if info.type == pafs.FileType.File and info.base_name.startswith(TUNE_STATE):
            store.remove(*TUNE_DIR, info.base_name)
    for name, data in snap.items():
        store.write_bytes(data, *TUNE_DIR, name)
    why = "damaged (a full disk or a kill mid-write)" if own is None else "torn or behind (an upload cut off)"
    print(f"Tune's saved state was {why}; resuming from the whole copy taken at its last save", flush=True)


def drop_damaged_train_state(run_dir: str) -> None:
    """A rerun trial resumes from Train's checkpoint record; one truncated by a full disk would
    stop Train from starting at all, so it is removed and the trial trains from its start."""
    store = open_store(run_dir)
    try:
        json.loads(store.read_bytes("checkpoint_manager_snapshot.json"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        store.remove("checkpoint_manager_snapshot.json")
