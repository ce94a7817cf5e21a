"""Claims on configurations: the first trial to create a configuration's claim file trains it;
a trial that re-picks the configuration (TPE does) waits for that one instead. A claim also
records what the trial is, for its row if it never finishes. No Ray here.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow.fs as pafs

from ltray.results.storage import open_store


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
