"""Where Optuna keeps a study's search (``search.storage``): the default SQLite file, an RDB URL,
or a JournalStorage file. No Ray here; Optuna is imported only when a storage is opened.

- ``""`` (default): ``<study>/optuna.db``. A study on a URI (``s3://...``) cannot hold SQLite, so
  the driver keeps a working copy in its temporary folder and copies it to ``<study>/optuna.db``
  at each of Tune's saves; ``--resume`` on another machine starts from that copy.
- ``postgresql://...``, ``mysql+pymysql://...``, ``sqlite:////abs/path.db``: Optuna's RDBStorage.
- ``journal:PATH``: Optuna's JournalStorage on an append-only file (safe on NFS, where SQLite's
  locks are not).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import tempfile
import time

from ltray.errors import LtrayError
from ltray.results.storage import join, local_folder, open_store, shown

JOURNAL = "journal:"
_URL = re.compile(r"^[a-z][a-z0-9+]*://")


def check(value: str) -> None:
    """The form of ``search.storage`` (whether it opens is checked by :func:`open_storage`)."""
    if value and not (value.startswith(JOURNAL) and value[len(JOURNAL):]) and not _URL.match(value):
        raise LtrayError(f"search.storage must be empty (SQLite next to the results), an RDB URL "
                         f"(postgresql://..., sqlite:////path.db) or journal:PATH, got {value!r}")


def absolute(value: str) -> str:
    """``value`` with a relative journal or SQLite path made absolute from the working directory:
    the study records where its search lives, and the dashboard, run from elsewhere, finds it."""
    if value.startswith(JOURNAL):
        return JOURNAL + os.path.abspath(value[len(JOURNAL):])
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(value[len("sqlite:///"):])
    return value


def local_db(study_dir: str) -> str:
    """The default SQLite file: in the study folder, or (for a study on a URI) a working copy in
    the temporary folder, at a path every machine computes alike from the URI and its endpoint: a
    resumed searcher, restored from Tune's state on another machine, reopens the same path."""
    store = open_store(study_dir)
    if store.local:
        return os.path.join(store.root, "optuna.db")
    # two drivers on one machine must never share (and resume from) one working copy
    return os.path.join(local_folder("ltray-optuna", study_dir), "optuna.db")


def open_storage(value: str, study_dir: str, resume: bool = False, repair: bool = False):
    """The Optuna storage of a study; one LtrayError if it cannot be opened. With ``repair``, a
    damaged default SQLite file (not a database, truncated, unreadable) is moved to the study's
    ``damaged/`` folder and an empty one takes its place (``--resume`` then rebuilds the search
    from the rows): see :func:`open_repaired`."""
    return open_repaired(value, study_dir, resume, repair)[0]


def open_repaired(value: str, study_dir: str, resume: bool = False, repair: bool = False) -> tuple[object, str]:
    """(storage, why a damaged default SQLite file was set aside, or "")."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    db = ""
    try:
        if value.startswith(JOURNAL):
            path = os.path.abspath(value[len(JOURNAL):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return JournalStorage(JournalFileBackend(path)), ""
        if value:
            return _checked(optuna.storages.RDBStorage(value)), ""
        db = local_db(study_dir)
        os.makedirs(os.path.dirname(db), exist_ok=True)
        if not open_store(study_dir).local:
            _working_copy(study_dir, db, resume)
        try:
            return _checked(optuna.storages.RDBStorage(f"sqlite:///{db}")), ""
        except Exception as e:  # not a database, truncated, or a foreign schema
            if not repair:
                raise
            why = f"{shown(join(study_dir, 'optuna.db'))} was damaged: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            _set_aside(study_dir, db)
            return optuna.storages.RDBStorage(f"sqlite:///{db}"), why
    except LtrayError:
        raise
    except Exception as e:  # a bad URL, an unreachable server, a missing driver, a read-only folder
        hint = "; --resume rebuilds a damaged default optuna.db from the rows" if not value and not repair else ""
        raise LtrayError(f"cannot open search.storage {value or db!r}: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:300]}{hint}") from None


def _checked(storage):
    """The storage, once it answered a read (SQLite opens many damaged files and fails on the first query)."""
    for study in storage.get_all_studies():
        storage.get_n_trials(storage.get_study_id_from_name(study.study_name))
    return storage


def _set_aside(study_dir: str, db: str) -> None:
    """Move a damaged optuna.db (and, for a study on a URI, the study's copy) to ``damaged/``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    store = open_store(study_dir)
    if store.local:
        store.move(("optuna.db",), ("damaged", f"optuna.db.{stamp}"))
        return
    if store.is_file("optuna.db"):
        store.move(("optuna.db",), ("damaged", f"optuna.db.{stamp}"))
    os.remove(db)


def publish(value: str, study_dir: str) -> None:
    """Copy the default local SQLite file of a study on a URI to ``<study>/optuna.db`` (a
    consistent snapshot through SQLite's backup API, taken while trials may be writing)."""
    store = open_store(study_dir)
    db = local_db(study_dir)
    if value or store.local or not os.path.isfile(db):
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "optuna.db")
        with contextlib.closing(sqlite3.connect(db)) as src, contextlib.closing(sqlite3.connect(copy)) as dest:
            src.backup(dest)
        with open(copy, "rb") as f:
            store.write_bytes(f.read(), "optuna.db")


def retire(value: str, study_dir: str) -> None:
    """After a run that ended (not killed, not interrupted): the working copy of a study on a URI
    is copied once more and then removed, so that ``/tmp/ltray-optuna/`` holds only the studies
    this machine is running or that stopped before their end. A later ``--resume`` starts from
    the study's copy. When the copy cannot be written, the working copy stays (the error goes to
    the caller)."""
    db = local_db(study_dir)
    if value or open_store(study_dir).local or not os.path.isfile(db):
        return
    publish(value, study_dir)
    shutil.rmtree(os.path.dirname(db), ignore_errors=True)


def _working_copy(study_dir: str, db: str, resume: bool) -> None:
    """A new study starts from no file (a deleted study's copy must not come back); a resumed
    one from the study's copy, unless this machine's file knows more trials (its driver died
    after the last copy)."""
    if not resume:
        if os.path.isfile(db):
            os.remove(db)
        return
    store = open_store(study_dir)
    if not store.is_file("optuna.db"):
        return
    copy = db + ".copy"
    store.fetch(copy, "optuna.db")
    if os.path.isfile(db) and _trials(db) >= _trials(copy):
        os.remove(copy)
        return
    os.replace(copy, db)
    print(f"search state: resuming from the copy at {shown(join(study_dir, 'optuna.db'))}", flush=True)


def _trials(db: str) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return con.execute("select count(*) from trials").fetchone()[0]
    except sqlite3.Error:  # an empty or foreign file
        return -1
