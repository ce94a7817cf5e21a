"""What a study is, for the line at the top of its page: dataset and rho, model, epochs, methods,
seeds, objective, trials by status (running ones included), when it started and last finished,
and the code versions its trials ran. From its experiment.json, the trials rows, and a listing
of its epochs files, ends and lease, never of every journal record (no Ray, no Optuna)."""

from __future__ import annotations

import datetime
import json
import time
from collections import Counter

import pyarrow as pa

from ltray import results as R
from ltray.results.storage import open_store

LEASE_STALE_S = 60.0  # ltray.sweep.lease.STALE_S: a lease not renewed for this long belongs to no live run


def header_info(path: str, trials: pa.Table) -> dict:
    """The study's description (see the module docstring); every field present, "" when unknown."""
    try:
        exp = json.loads(R.study_file(path, "experiment.json") or "{}")
    except ValueError:
        exp = {}
    data, train, search = exp.get("data") or {}, exp.get("train") or {}, exp.get("search") or {}
    rows = trials.select(["trial_id", "status", "finished_at", "code_version"]).to_pylist()
    counts = Counter(r["status"] for r in rows)
    live = _live_run(path)
    store = open_store(path)
    ended = {i.base_name for i in store.listdir("ended")}
    started = {i.base_name[:-len(".parquet")] for i in store.listdir("epochs") if i.base_name.endswith(".parquet")}
    unfinished = started - {r["trial_id"] for r in rows} - ended
    if unfinished:
        counts["running" if live else "cut off (--resume goes on)"] += len(unfinished)
    finished = sorted(r["finished_at"] for r in rows if r["finished_at"])
    return {"dataset": data.get("name", ""), "rho": data.get("rho", ""), "model": (exp.get("model") or {}).get("name", ""),
            "epochs": train.get("epochs", ""), "methods": list(exp.get("methods") or []),
            "seeds": exp.get("repeats", ""), "objective": ", ".join(search.get("objectives") or []),
            "counts": dict(counts), "live": live, "started": _started(store) or (finished[0] if finished else ""),
            "last_finished": finished[-1] if finished else "",
            "code_versions": sorted({r["code_version"] for r in rows if r["code_version"]})}


def header_text(info: dict) -> str:
    """One line: "digits-lt rho 100, cnn-small, 30 epochs, 5 methods, 1 seed, on val_bal_acc | ...". """
    what = [f"{info['dataset']} rho {info['rho']:g}" if isinstance(info["rho"], (int, float)) else info["dataset"],
            info["model"], f"{info['epochs']} epochs" if info["epochs"] != "" else "",
            f"{len(info['methods'])} methods ({', '.join(info['methods'])})" if info["methods"] else "",
            f"{info['seeds']} seed{'s' if info['seeds'] != 1 else ''}" if info["seeds"] != "" else "",
            f"selected on {info['objective']}" if info["objective"] else ""]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(info["counts"].items())) or "no trial yet"
    when = " | ".join(x for x in (f"started {info['started']}" if info["started"] else "",
                                   f"last finished {info['last_finished']}" if info["last_finished"] else "",
                                   "a run is live" if info["live"] else "") if x)
    code = f"code {', '.join(info['code_versions'])}" if info["code_versions"] else ""
    return " | ".join(x for x in (", ".join(w for w in what if w), counts, when, code) if x)


def _live_run(path: str) -> bool:
    """A sweep's driver holds the study now: its lease was renewed within the last minute."""
    try:
        lease = json.loads(open_store(path).read_bytes("lease.json"))
    except (OSError, ValueError):
        return False
    return time.time() - float(lease.get("renewed", 0)) < LEASE_STALE_S


def _started(store) -> str:
    """When the study started: its experiment.json is written then, and never again."""
    info = store.fs.get_file_info(store.path("experiment.json"))
    if info.mtime is None:
        return ""
    return info.mtime.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
