"""A study's results: fixed Arrow schemas, one Parquet file per trial and table, atomic writes.

Layout: ``<study>/<table>/<trial_id>.parquet`` plus ``experiment.py`` (the source),
``experiment.json`` (after overrides), ``requirements.txt`` (pip freeze) and ``optuna.db``.
The study folder may be local or a URI pyarrow understands (``s3://...``, ``gs://...``).
"""

from __future__ import annotations

import typing
import warnings
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ltray.errors import LtrayError
from ltray.storage import open_store

F64, I64, STR = pa.float64(), pa.int64(), pa.string()

NAN = float("nan")


@dataclass(frozen=True)
class TrialMeta:
    """Who a trial is: the key columns of its trials row, built once per trial."""

    study: str
    trial_id: str
    method: str
    params: dict
    """The method's hyperparameters, without the method prefix."""
    seed: int
    repeat: int
    dataset: str
    rho: float
    model: str
    num_workers: int
    subset_hash: str = ""
    """Hash of the chosen training/validation/test indices (known once the data is loaded)."""
    objective: str = "val_bal_acc"
    """The validation metric the study selects on (its first search objective)."""
    node: str = ""
    """The Ray node that trained the trial (its rank 0); empty outside Ray."""


@dataclass
class TrialRecord:
    """One row of the ``trials`` table; its fields (in order) are the table's schema."""

    study: str
    trial_id: str
    method: str
    params: dict
    seed: int
    repeat: int
    dataset: str
    rho: float
    subset_hash: str
    model: str
    num_workers: int
    status: str
    """completed, duplicate, failed, stopped (by ASHA) or interrupted."""
    error: str = ""
    best_epoch: int = -1
    """The selected epoch (best validation balanced accuracy), 0-based."""
    epochs_run: int = 0
    val_bal_acc: float = NAN
    val_many: float = NAN
    val_medium: float = NAN
    val_few: float = NAN
    test_bal_acc: float = NAN
    test_many: float = NAN
    test_medium: float = NAN
    test_few: float = NAN
    tau_star: float = NAN
    """Post-hoc logit adjustment's tau, chosen on validation (0 for balanced logits)."""
    val_bal_acc_posthoc: float = NAN
    test_bal_acc_posthoc: float = NAN
    test_bal_acc_posthoc_tau1: float = NAN
    test_many_posthoc: float = NAN
    test_medium_posthoc: float = NAN
    test_few_posthoc: float = NAN
    taunorm_tau_star: float = NAN
    val_bal_acc_taunorm: float = NAN
    test_bal_acc_taunorm: float = NAN
    test_bal_acc_taunorm_tau1: float = NAN
    test_ece: float = NAN
    """Expected calibration error (15 bins) of the test logits."""
    temperature: float = NAN
    """Temperature scaling's T, fitted on validation (NLL)."""
    test_ece_ts: float = NAN
    """Test ECE after temperature scaling (accuracy is unchanged by it)."""
    stage: str = ""
    resumed_at: int = 0
    wall_s: float = NAN
    finished_at: str = ""
    versions: str = ""
    code_version: str = ""
    objective: str = "val_bal_acc"
    """The validation metric the study selects on: the searcher's, and every view's selection."""
    node: str = ""
    """The Ray node that trained the trial (its rank 0), as ``ray.get_runtime_context().get_node_id()``."""

    @classmethod
    def of(cls, meta: TrialMeta, **values) -> TrialRecord:
        return cls(**{f.name: getattr(meta, f.name) for f in fields(TrialMeta)}, **values)

    def columns(self) -> dict[str, list]:
        """One-row columns for :func:`table`."""
        return {f.name: [getattr(self, f.name)] for f in fields(self)}


# renamed columns: files written before the rename read under the new name
RENAMED = {"test_bal_acc_posthoc1": "test_bal_acc_posthoc_tau1", "test_bal_acc_taunorm1": "test_bal_acc_taunorm_tau1"}
RENAMED_FROM = {new: old for old, new in RENAMED.items()}
_ARROW = {str: STR, int: I64, float: F64, dict: pa.map_(STR, F64)}


def _schema_of(cls) -> pa.Schema:
    hints = typing.get_type_hints(cls)
    return pa.schema([(f.name, _ARROW[hints[f.name]]) for f in fields(cls)])


SCHEMAS: dict[str, pa.Schema] = {
    "trials": _schema_of(TrialRecord),
    "epochs": pa.schema([
        ("study", STR), ("trial_id", STR), ("epoch", I64), ("lr", F64), ("train_loss", F64), ("val_bal_acc", F64),
        ("val_many", F64), ("val_medium", F64), ("val_few", F64), ("images_per_s", F64), ("epoch_s", F64),
        # only with train.track_test (the protocol-gap report; never selected on), else NaN
        ("test_bal_acc", F64), ("test_many", F64), ("test_medium", F64), ("test_few", F64),
        ("test_bal_acc_tau_oracle", F64),
    ]),
    "per_class": pa.schema([
        ("study", STR), ("trial_id", STR), ("split", STR), ("class_id", I64), ("train_count", I64),
        ("accuracy", F64), ("accuracy_posthoc", F64), ("precision", F64),
    ]),
    "shifts": pa.schema([
        ("study", STR), ("trial_id", STR), ("shift", STR), ("ratio", F64), ("direction", STR), ("size", I64),
        ("adjustment", STR), ("accuracy", F64), ("prior_l1", F64),
    ]),
    "tau_curve": pa.schema([
        ("study", STR), ("trial_id", STR), ("split", STR), ("tau_lo", F64), ("tau_hi", F64), ("bal_acc", F64),
    ]),
    "stages": pa.schema([
        ("study", STR), ("key", STR), ("kind", STR), ("method", STR), ("trained_by", STR), ("seed", I64),
        ("subset_hash", STR), ("wall_s", F64), ("val_bal_acc", F64), ("test_bal_acc", F64), ("finished_at", STR),
    ]),
    "virtual": pa.schema([
        ("study", STR), ("trial_id", STR), ("stage", STR), ("class_id", I64), ("train_count", I64), ("raw", F64),
        ("tempered", F64), ("power_normalised", F64),
    ]),
    "logits": pa.schema([
        ("study", STR), ("trial_id", STR), ("split", STR), ("index", I64), ("label", I64),
        ("logits", pa.list_(pa.float32())),
    ]),
}
TABLES = tuple(SCHEMAS)


def table(name: str, rows: dict) -> pa.Table:
    """Columns (dict of lists/arrays) -> a Table with the fixed schema of ``name``."""
    schema = SCHEMAS[name]
    missing = set(schema.names) - set(rows)
    if missing:
        raise ValueError(f"{name}: missing columns {sorted(missing)}")
    n = {len(v) for v in rows.values()}
    if len(n) > 1:
        raise ValueError(f"{name}: columns of different lengths {n}")
    return pa.table({f.name: pa.array(_plain(rows[f.name], f.type), type=f.type) for f in schema}, schema=schema)


def _plain(col, tp):
    if isinstance(col, np.ndarray) and tp == F64:
        return col.astype(np.float64)
    return list(col) if not isinstance(col, (list, np.ndarray)) else col


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


def load_study(path: str, tables=TABLES) -> dict[str, pa.Table]:
    """Every table of a study as a ``pyarrow.Table`` with its fixed schema.

    Unreadable or partial files are skipped with a warning naming them; a missing table is empty.
    """
    store = open_store(path)
    if not store.is_dir():
        raise LtrayError(f"study folder {path} does not exist")
    out = {}
    for name in tables:
        schema = SCHEMAS[name]
        parts = []
        for fi in store.listdir(name):
            if fi.type != pafs.FileType.File or not fi.base_name.endswith(".parquet"):
                continue
            try:
                with store.fs.open_input_file(fi.path) as f:
                    t = pq.read_table(f)
                t = t.rename_columns([RENAMED.get(c, c) for c in t.column_names])
                # a file from an older ltray lacks newer columns: they read as nulls
                for field in schema:
                    if field.name not in t.column_names:
                        t = t.append_column(field.name, pa.nulls(t.num_rows, field.type))
                parts.append(t.select(schema.names).cast(schema))
            except Exception as e:  # corrupt, truncated or foreign file
                warnings.warn(f"skipped unreadable results file {fi.path}: {type(e).__name__}: {e}", stacklevel=2)
        out[name] = pa.concat_tables(parts) if parts else schema.empty_table()
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
