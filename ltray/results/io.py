"""Reading and writing a study's tables: one Parquet file per trial and table, written
atomically through the study's ``Store`` (a local folder or any ``pyarrow.fs`` URI).

Layout: ``<study>/<table>/<trial_id>.parquet`` plus ``experiment.py`` (the source),
``experiment.json`` (after overrides), ``requirements.txt`` (pip freeze) and ``optuna.db``.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ltray.errors import LtrayError
from ltray.results.schema import RENAMED, SCHEMAS, TABLES
from ltray.results.storage import open_store


def write_table(study_dir: str, name: str, trial_id: str, tbl: pa.Table) -> str:
    """Write one trial's rows of one table atomically: a temporary name, then a rename."""
    if tbl.schema != SCHEMAS[name]:
        raise ValueError(f"{name}: schema mismatch")
    store = open_store(study_dir)
    buf = pa.BufferOutputStream()
    pq.write_table(tbl, buf)
    try:
        store.write_bytes(buf.getvalue().to_pybytes(), name, f"{trial_id}.parquet")
    except OSError as e:
        raise LtrayError(f"cannot write results under {study_dir}: {e}. Free space or fix permissions, "
                         "then run the same command with --resume") from e
    return store.uri_of(name, f"{trial_id}.parquet")


class Damaged(NamedTuple):
    """A results file that could not be read (truncated, corrupt, foreign): skipped, never hidden."""

    table: str
    trial_id: str
    path: str
    error: str

    def __str__(self) -> str:
        return f"unreadable results file {self.path}: {self.error}"


def read_study(path: str, tables=TABLES, trial_ids=None) -> tuple[dict[str, pa.Table], list[Damaged]]:
    """Every table of a study as a ``pyarrow.Table`` with its fixed schema, and the files that
    could not be read (skipped). ``trial_ids``: read only those trials' files (a missing one is
    no error). A missing table is empty."""
    store = open_store(path)
    if not store.is_dir():
        raise LtrayError(f"study folder {path} does not exist")
    wanted = None if trial_ids is None else {f"{t}.parquet" for t in trial_ids}
    out, damaged = {}, []
    for name in tables:
        schema = SCHEMAS[name]
        parts = []
        for fi in store.listdir(name):
            if fi.type != pafs.FileType.File or not fi.base_name.endswith(".parquet") or \
                    (wanted is not None and fi.base_name not in wanted):
                continue
            try:
                parts.append(_read_file(store, fi.path, schema))
            except Exception as e:  # corrupt, truncated or foreign file
                damaged.append(Damaged(name, fi.base_name[:-len(".parquet")], fi.path,
                                       f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"))
        out[name] = pa.concat_tables(parts) if parts else schema.empty_table()
    return out, damaged


def _read_file(store, file: str, schema: pa.Schema) -> pa.Table:
    with store.fs.open_input_file(file) as f:
        t = pq.ParquetFile(f).read()  # ~1 ms a file less than pq.read_table (no dataset machinery)
    if t.schema.equals(schema):  # a file of this ltray: its columns as they are, under the schema's names
        return pa.Table.from_arrays(t.columns, schema=schema)
    t = t.rename_columns([RENAMED.get(c, c) for c in t.column_names])
    # a file from an older ltray lacks newer columns: they read as nulls
    for field in schema:
        if field.name not in t.column_names:
            t = t.append_column(field.name, pa.nulls(t.num_rows, field.type))
    return t.select(schema.names).cast(schema)


def load_study(path: str, tables=TABLES, trial_ids=None) -> dict[str, pa.Table]:
    """:func:`read_study`'s tables; each unreadable file is skipped with a warning naming it."""
    out, damaged = read_study(path, tables, trial_ids)
    for d in damaged:
        warnings.warn(f"skipped {d}", stacklevel=2)
    return out


def study_file(path: str, name: str) -> str | None:
    """The text of one file at the top of a study (``experiment.py``, ``experiment.json``), local
    or under a URI; None when the study has no such file."""
    store = open_store(path)
    try:
        return store.read_bytes(name).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise LtrayError(f"cannot read {store.uri_of(name)}: {e}") from None


def finished_trials(path: str) -> dict[str, str]:
    """trial_id -> status of the trials already written in a study (empty if none)."""
    try:
        t = load_study(path, ("trials",))["trials"]
    except LtrayError:
        return {}
    return dict(zip(t.column("trial_id").to_pylist(), t.column("status").to_pylist()))
