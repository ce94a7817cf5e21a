"""What lets a study survive crashes and a full disk: claims on configurations, a whole copy of
Tune's state, and disk-space checks. No Ray imports: the sweep calls these around Tune.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import warnings

import pyarrow.fs as pafs

from ltray import results as R
from ltray.storage import open_store


class ResultsFull(RuntimeError):
    """The results disk is (nearly) full: the trial did not finish and is not recorded as failed,
    so ``--resume`` runs it again once there is space."""


FULL = "results disk full"  # in every ResultsFull message: the driver finds it in Tune's errors


class ProcessDied(RuntimeError):
    """A process or node of the trial died (killed, out of memory, preempted) after Train's own
    restarts: not an error of the trial's code, so no ``failed`` row; ``--resume`` runs it again."""


DIED = "a process of the trial died"  # in every ProcessDied message, as FULL


def free_mb(path: str) -> float:
    """Free space (MiB) on the disk holding path; unbounded for an object store (a URI)."""
    store = open_store(path)
    if not store.local:
        return float("inf")
    return shutil.disk_usage(store.root).free / 2**20


def check_space(study_dir: str, min_free_mb: float) -> None:
    free = free_mb(study_dir)
    if free < min_free_mb:
        raise ResultsFull(f"{FULL}: {free:.0f} MiB free under {study_dir}, below resources.min_free_mb={min_free_mb:g}")


def disk_full(e: BaseException | None) -> bool:
    """ENOSPC/EDQUOT anywhere in the chain, or in a remote error's text (Ray wraps worker errors)."""
    seen = 0
    while e is not None and seen < 20:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if FULL in str(e) or "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def mark_ended(study_dir: str, trial_id: str, how: str, error: str = "", result: dict | None = None,
               config: dict | None = None) -> None:
    """Record how Tune ended a trial ("complete": finished or stopped by the scheduler; "error"),
    with its last result: a trial without a row is then labelled by what happened, and a
    duplicate waiting for it stops waiting."""
    data = json.dumps({"how": how, "error": error, "result": result or {}, "config": config or {}}, default=float)
    try:
        open_store(study_dir).write_bytes(data.encode(), "ended", trial_id)
    except OSError as e:  # a full results disk: the study stops with its own error; the row is unlabelled
        warnings.warn(f"could not record how trial {trial_id} ended in {study_dir}/ended: {e}", stacklevel=2)


def outcomes(study_dir: str) -> dict[str, dict]:
    """trial_id -> {"how", "error", "result"} of every trial Tune has ended in this study."""
    store = open_store(study_dir)
    out = {}
    for info in store.listdir("ended"):
        try:
            out[info.base_name] = json.loads(store.read_bytes("ended", info.base_name))
        except (OSError, ValueError):  # a file being replaced: read again on the next poll
            pass
    return out


def claim(study_dir: str, method: str, hp: dict, seed: int, repeat: int, trial_id: str) -> str:
    """The trial that trains this (method, hp, seed): the first to create its claim file, which
    also records what the trial is (for a row if it never finishes)."""
    key = hashlib.sha256(json.dumps([method, hp, seed], sort_keys=True).encode()).hexdigest()[:16]
    store = open_store(study_dir)
    mine = json.dumps({"trial_id": trial_id, "method": method, "hp": hp, "seed": seed, "repeat": repeat}).encode()
    if store.create_new(mine, "claims", key):
        return trial_id
    return read_claim(study_dir, "claims", key).get("trial_id") or trial_id


def read_claim(study_dir: str, *parts: str) -> dict:
    text = open_store(study_dir).read_bytes(*parts).decode().strip()
    try:
        return json.loads(text)
    except ValueError:  # being written, or a study from before claims were JSON
        return {"trial_id": text}


def claims(study_dir: str) -> dict[str, dict]:
    """trial_id -> its claim (method, hp, seed, repeat), released ones included."""
    store = open_store(study_dir)
    out = {}
    for folder in (("claims",), ("claims", "stale")):
        for info in store.listdir(*folder):
            if info.type == pafs.FileType.File:
                c = read_claim(study_dir, *folder, info.base_name)
                out.setdefault(c.get("trial_id", ""), c)
    return out


# Tune's state: the trials (experiment_state), how many it generated (search_gen_state) and the
# searcher's own state. Tune saves the set in the driver's staging folder, then uploads it to the
# study in the background, file by file: a driver killed mid-upload leaves a torn set (a newer
# trial count than trial list: --resume then never runs a trial), and a full disk truncates a
# file (Tune then silently starts the study afresh). The progress callback copies each save's
# set whole to ray/tune/good/ (snapshot_tune_state); --resume puts it back (restore_tune_state).
TUNE_STATE = ("experiment_state-", "search_gen_state-", "searcher-state-")
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


def release_stale_claims(study_dir: str) -> None:
    """On --resume nothing runs: a claim by a trial that never finished would make its rerun (or a
    same-configuration trial) wait forever, and its recorded end would fail such a wait at once."""
    finished = R.finished_trials(study_dir)
    store = open_store(study_dir)
    for info in store.listdir("ended"):
        if info.base_name not in finished:  # it runs again now: its old end would fail a waiting duplicate
            store.remove("ended", info.base_name)
    for info in store.listdir("claims"):
        if info.type != pafs.FileType.File:
            continue
        owner = read_claim(study_dir, "claims", info.base_name).get("trial_id", "")
        # an interrupted owner has a row but no result: whoever picks the configuration next trains it
        if finished.get(owner, "interrupted") == "interrupted":  # kept: its trial may need a row
            store.move(("claims", info.base_name), ("claims", "stale", owner or info.base_name))
