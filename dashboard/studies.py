"""Reading studies for the dashboard: names from the browser are resolved strictly inside the
results folder, tables are cached by file modification times, parameter importances by the set of
finished trials, and unreadable files become warnings shown on the page."""

from __future__ import annotations

import datetime
import threading
import warnings
from pathlib import Path

import optuna

from dashboard import figures as F
from ltray import results as R

TABLES = ("trials", "epochs", "per_class", "shifts", "tau_curve", "virtual", "stages")
# the paired comparison needs every trial's test logits: read only for it (the largest table)
PAIRED_TABLES = ("trials", "epochs", "per_class", "logits")


class StudyRefused(ValueError):
    """A study name that does not name a study folder inside the results folder."""


def list_studies(root: Path) -> list[str]:
    """Folders under ``root`` that hold a study (a trials table or an experiment file)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and ((p / "trials").is_dir() or (p / "experiment.json").is_file()))


def resolve(root: Path, name: str | None) -> Path:
    """The study folder for a name coming from the browser; anything resolving outside ``root``
    (``..``, absolute paths, links out) or not a study is refused."""
    if not name or not isinstance(name, str) or "\x00" in name:
        raise StudyRefused("no study chosen")
    base = root.resolve()
    path = (base / name).resolve()
    if path.parent != base:
        raise StudyRefused(f"refused study {name!r}: it is not a folder directly inside the results folder")
    if name not in list_studies(root):
        raise StudyRefused(f"no study {name!r} in {root}")
    return path


def signature(path: Path) -> tuple:
    sig = []
    for t in TABLES + ("logits", "optuna.db"):
        p = path / t
        try:
            if p.is_dir():
                sig.append((t, tuple(sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in p.iterdir()))))
            elif p.is_file():
                sig.append((t, p.stat().st_mtime_ns))
        except FileNotFoundError:  # a file replaced while listing: the next refresh sees it
            sig.append((t, "changing"))
    return tuple(sig)


_cache: dict[str, tuple[tuple, dict, list[str]]] = {}
_lock = threading.Lock()
_read_lock = threading.Lock()


def load(path: Path, names: tuple[str, ...] = TABLES) -> tuple[dict, list[str]]:
    """(tables, warnings) of a study; re-read only when one of its files changed."""
    sig = signature(path)
    key = f"{path}|{','.join(names)}"
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0] == sig:
            return hit[1], hit[2]
    # catch_warnings swaps process-wide state: two callbacks reading at once (Dash runs them in
    # threads) would take each other's warnings, so reads are serialised
    with _read_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables = R.load_study(str(path), names)
    notes = [str(w.message) for w in caught if "results file" in str(w.message)]
    with _lock:
        _cache[key] = (sig, tables, notes)
    return tables, notes


def optuna_storage(path: Path) -> tuple[str, str] | None:
    """(storage URL, study name) of the study's Optuna SQLite file, if it has one."""
    db = path / "optuna.db"
    if not db.is_file():
        return None
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:  # read-only: the dashboard never writes
        row = con.execute("select study_name from studies limit 1").fetchone()
    return (f"sqlite:///{db}", row[0]) if row else None


def _finished(study: optuna.Study) -> tuple[int, datetime.datetime | None]:
    """(count, last completion) of the study's finished trials: it changes when a trial finishes,
    not when a running one reports an epoch (which changes optuna.db's modification time)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return len(done), max((t.datetime_complete for t in done), default=None)


_importances: dict[tuple[str, str], tuple[tuple, F.ImportancesInfo]] = {}


def importances(path: Path, study: optuna.Study) -> F.ImportancesInfo:
    """``figures.importances_info`` of the Optuna study of the study folder ``path``, computed
    once per set of finished trials and reused by every refresh until another trial finishes."""
    key, sig = (str(path), study.study_name), _finished(study)
    with _lock:
        hit = _importances.get(key)
        if hit and hit[0] == sig:
            return hit[1]
    info = F.importances_info(study)
    with _lock:
        _importances[key] = (sig, info)
    return info
