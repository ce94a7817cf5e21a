"""Where Optuna keeps a study's search (``search.storage``): the default SQLite file, an RDB URL,
or a JournalStorage file. No Ray here; Optuna is imported only when a storage is opened.

- ``""`` (default): ``<study>/optuna.db``. A study on a URI (``s3://...``) cannot hold SQLite, so
  the driver keeps the file in a local cache and copies it to ``<study>/optuna.db`` after each
  trial; ``--resume`` from another machine starts from that copy.
- ``postgresql://...``, ``mysql+pymysql://...``, ``sqlite:////abs/path.db``: Optuna's RDBStorage.
- ``journal:PATH``: Optuna's JournalStorage on an append-only file (safe on NFS, where SQLite's
  locks are not).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import tempfile

from ltray.errors import LtrayError
from ltray.storage import join, open_store

JOURNAL = "journal:"
_URL = re.compile(r"^[a-z][a-z0-9+]*://")


def check(value: str) -> None:
    """The form of ``search.storage`` (whether it opens is checked by :func:`open_storage`)."""
    if value and not (value.startswith(JOURNAL) and value[len(JOURNAL):]) and not _URL.match(value):
        raise LtrayError(f"search.storage must be empty (SQLite next to the results), an RDB URL "
                         f"(postgresql://..., sqlite:////path.db) or journal:PATH, got {value!r}")


def local_db(study_dir: str) -> str:
    """The default SQLite file: in the study folder, or (for a study on a URI) a local cache."""
    if open_store(study_dir).local:
        return os.path.join(open_store(study_dir).root, "optuna.db")
    blob = hashlib.sha256(study_dir.encode()).hexdigest()[:16]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "ltray", "optuna", blob, "optuna.db")


def open_storage(value: str, study_dir: str, resume: bool = False):
    """The Optuna storage of a study; one LtrayError if it cannot be opened."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    try:
        if value.startswith(JOURNAL):
            path = os.path.abspath(value[len(JOURNAL):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return JournalStorage(JournalFileBackend(path))
        if value:
            return optuna.storages.RDBStorage(value)
        db = local_db(study_dir)
        os.makedirs(os.path.dirname(db), exist_ok=True)
        if resume and not os.path.isfile(db):
            _fetch_copy(study_dir, db)
        return optuna.storages.RDBStorage(f"sqlite:///{db}")
    except LtrayError:
        raise
    except Exception as e:  # a bad URL, an unreachable server, a missing driver, a read-only folder
        raise LtrayError(f"cannot open search.storage {value or db!r}: {type(e).__name__}: {e}") from None


def publish(value: str, study_dir: str) -> None:
    """Copy the default local SQLite file of a study on a URI to ``<study>/optuna.db`` (a
    consistent snapshot through SQLite's backup API, taken while trials may be writing)."""
    store = open_store(study_dir)
    db = local_db(study_dir)
    if value or store.local or not os.path.isfile(db):
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "optuna.db")
        with sqlite3.connect(db) as src, sqlite3.connect(copy) as dest:
            src.backup(dest)
        with open(copy, "rb") as f:
            store.write_bytes(f.read(), "optuna.db")


def _fetch_copy(study_dir: str, db: str) -> None:
    store = open_store(study_dir)
    if store.is_file("optuna.db"):
        with open(db, "wb") as f:
            f.write(store.read_bytes("optuna.db"))
        print(f"search state: resuming from the copy at {join(study_dir, 'optuna.db')}", flush=True)
