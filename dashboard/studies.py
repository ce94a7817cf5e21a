"""Reading studies for the dashboard: names from the browser are resolved strictly inside the
results folder, tables are cached by file modification times, parameter importances by the set of
finished trials, and unreadable files become warnings shown on the page."""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path

import optuna
import pyarrow.fs as pafs

from dashboard import search_figures
from ltray import results as R
from ltray.results import search_storage
from ltray.results.storage import is_uri, join, local_folder, open_store, shown

TABLES = ("trials", "epochs", "per_class", "shifts", "tau_curve", "virtual", "stages")
# the paired comparison needs the selected configurations' test logits (the largest table):
# read only for it, and only of those trials
PAIRED_TABLES = ("epochs", "per_class", "logits", "expert_logits")


class StudyRefused(ValueError):
    """A study name that does not name a study folder inside the results folder."""


def list_studies(root: str) -> list[str]:
    """Folders under ``root`` (a folder or a URI) that hold a study (a trials table or an experiment file)."""
    store = open_store(str(root))
    if not store.is_dir():
        return []
    return sorted(i.base_name for i in store.listdir() if i.type == pafs.FileType.Directory
                  and (store.is_dir(i.base_name, "trials") or store.is_file(i.base_name, "experiment.json")))


def resolve(root: str, name: str | None) -> str:
    """The study folder (path or URI) for a name coming from the browser; anything resolving
    outside ``root`` (``..``, absolute paths, links out, a nested name) or not a study is refused."""
    if not name or not isinstance(name, str) or "\x00" in name:
        raise StudyRefused("no study chosen")
    if is_uri(str(root)):
        path = join(str(root), name)
        if "/" in name or name in (".", ".."):
            raise StudyRefused(f"refused study {name!r}: it is not a folder directly inside the results folder")
    else:
        base = Path(root).resolve()
        path = str((base / name).resolve())
        if Path(path).parent != base:
            raise StudyRefused(f"refused study {name!r}: it is not a folder directly inside the results folder")
    if name not in list_studies(root):
        # the page is public to whoever reaches the port: the server's folders stay off it
        raise StudyRefused(f"no study {name!r} in this dashboard's results folder; pick one above")
    return path


def signature(path: str, names: tuple[str, ...] = TABLES, trial_ids=None) -> tuple:
    """What changes when the study's files of these tables (of these trials) change: names, sizes
    and modification times (the search state has its own, :func:`search_signature`)."""
    store = open_store(path)
    wanted = None if trial_ids is None else {f"{t}.parquet" for t in trial_ids}
    return tuple((t, tuple((i.base_name, i.mtime_ns, i.size) for i in store.listdir(t)
                           if wanted is None or i.base_name in wanted)) for t in names)


CACHED = 32  # tables kept in memory: a study's overview, its paired trials, the trials picked per figure
_cache: OrderedDict[tuple, tuple[tuple, dict, list[str]]] = OrderedDict()
_lock = threading.Lock()  # guards the cache and the per-read locks
_reading: dict[tuple, threading.Lock] = {}


def load(path: str, names: tuple[str, ...] = TABLES, trial_ids=None) -> tuple[dict, list[str]]:
    """(tables, notes on unreadable files) of a study, of all trials or of ``trial_ids``; re-read
    only when one of those files changed. Concurrent requests for the same tables share one read:
    each waits on that read's lock, then finds the cache filled."""
    key = (path, tuple(names), None if trial_ids is None else frozenset(trial_ids))
    sig = signature(path, names, trial_ids)
    hit = _cached(key, sig)
    if hit is not None:
        return hit
    with _lock:
        reading = _reading.setdefault(key, threading.Lock())
    with reading:
        hit = _cached(key, sig)  # another request may have read it while this one waited
        if hit is not None:
            return hit
        tables, damaged = R.read_study(path, names, trial_ids)
        notes = [f"skipped {d}" for d in damaged]
        with _lock:
            _cache[key] = (sig, tables, notes)
            _cache.move_to_end(key)
            while len(_cache) > CACHED:
                _cache.popitem(last=False)
    return tables, notes


def _cached(key: tuple, sig: tuple) -> tuple[dict, list[str]] | None:
    with _lock:
        hit = _cache.get(key)
        if hit is None or hit[0] != sig:
            return None
        _cache.move_to_end(key)
        return hit[1], hit[2]


_made: OrderedDict[tuple, object] = OrderedDict()


def shared(key: tuple, make):
    """``make()``, computed once per ``key`` (a study and the signature of what it reads) however
    many requests ask at once: the others wait for it, then take it from the cache."""
    with _lock:
        if key in _made:
            _made.move_to_end(key)
            return _made[key]
        reading = _reading.setdefault(("made", *key), threading.Lock())
    with reading:
        with _lock:
            if key in _made:
                return _made[key]
        value = make()
        with _lock:
            _made[key] = value
            while len(_made) > CACHED:
                _made.popitem(last=False)
        return value


def trials_with(path: str, table: str) -> list[str]:
    """The trials that have a file in ``table`` (listed, not read)."""
    return sorted(i.base_name[:-len(".parquet")] for i in open_store(path).listdir(table)
                  if i.base_name.endswith(".parquet"))


def optuna_storage(path: str, which: str | None = None) -> tuple[object, str] | None:
    """(Optuna storage, Optuna study name) of a study: ``which`` of its Optuna studies (one per
    method with search.per_method; :func:`search_studies`), else its first. The storage is the
    ``search.storage`` its experiment.json names, else its ``optuna.db`` (for a study on a URI, a
    local copy of it); None when it has none."""
    found = _opened(path)
    if found is None or not found[1]:
        return None
    storage, names = found
    return storage, which if which in names else names[0]


def search_studies(path: str) -> list[str]:
    """The Optuna studies of a study: the one named after it, or ``<name>.<method>`` per method;
    none when its search state cannot be read (a damaged optuna.db costs the search figures only)."""
    try:
        found = _opened(path)
    except Exception:
        return []
    return found[1] if found else []


def _opened(path: str) -> tuple[object, list[str]] | None:
    storage, study_name = _search_storage(path)
    if not storage:
        db = _local_db(path)
        if db is None:
            return None
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:  # read-only: the dashboard never writes
            names = [r[0] for r in con.execute("select study_name from studies order by study_id")]
        opened = f"sqlite:///{db}"
    elif storage.startswith(search_storage.JOURNAL) and not os.path.isfile(storage[len(search_storage.JOURNAL):]):
        return None  # opening would create it: the dashboard only reads
    else:
        try:  # one storage may hold many studies (a shared journal): this study's are named after it
            opened = search_storage.open_storage(storage, path)
            names = [s.study_name for s in optuna.get_all_study_summaries(opened)]
        except Exception:  # a database this machine cannot reach: the page shows no search figures
            return None
    ours = [n for n in names if n == study_name or n.startswith(study_name + ".")]
    return opened, ours if ours or storage else names[:1]


def search_signature(path: str):
    """Changes when the search state may have: optuna.db's (or the journal's) modification
    time; every 30 s for a database server."""
    storage, _ = _search_storage(path)
    if storage.startswith(search_storage.JOURNAL):
        try:
            return os.stat(storage[len(search_storage.JOURNAL):]).st_mtime_ns
        except OSError:
            return None
    if storage:
        return int(time.time() // 30)
    store = open_store(path)
    info = store.fs.get_file_info(store.path("optuna.db"))
    return (info.mtime_ns, info.size) if info.type == pafs.FileType.File else None


def _search_storage(path: str) -> tuple[str, str]:
    """(search.storage, study name) from the study's experiment.json."""
    folder = shown(path).rstrip("/").rsplit("/", 1)[-1]
    try:
        exp = json.loads(R.study_file(path, "experiment.json") or "{}")
    except ValueError:
        return "", folder
    return (exp.get("search") or {}).get("storage", ""), exp.get("name") or folder


def _local_db(path: str) -> str | None:
    """optuna.db of a local study; for one on a URI, a local copy refreshed when it changed."""
    store = open_store(path)
    if store.local:
        db = os.path.join(store.root, "optuna.db")
        return db if os.path.isfile(db) else None
    sig = search_signature(path)
    if sig is None:
        return None
    folder = local_folder("ltray-dashboard", path)
    copy = os.path.join(folder, f"optuna-{sig[0]}.db")
    if not os.path.isfile(copy):
        store.fetch(copy, "optuna.db")
        for old in os.listdir(folder):  # earlier copies: an open one stays readable until closed
            if old != os.path.basename(copy) and old.endswith(".db"):
                os.remove(os.path.join(folder, old))
    return copy


def _finished(study: optuna.Study) -> tuple[int, datetime.datetime | None]:
    """(count, last completion) of the study's finished trials: it changes when a trial finishes,
    not when a running one reports an epoch (which changes optuna.db's modification time)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return len(done), max((t.datetime_complete for t in done), default=None)


_importances: dict[tuple[str, str], tuple[tuple, search_figures.ImportancesInfo]] = {}


def importances(path: str, study: optuna.Study) -> search_figures.ImportancesInfo:
    """``figures.importances_info`` of the Optuna study of the study folder ``path``, computed
    once per set of finished trials and reused by every refresh until another trial finishes."""
    key, sig = (str(path), study.study_name), _finished(study)
    with _lock:
        hit = _importances.get(key)
        if hit and hit[0] == sig:
            return hit[1]
    info = search_figures.importances_info(study)
    with _lock:
        _importances[key] = (sig, info)
    return info
