"""What a study's tables hold: how a trial ended (``TrialStatus``), who it is (``TrialMeta``),
its ``trials`` row (``TrialRecord``), an ``epochs`` row (``EpochRecord``), and the fixed Arrow
schema of every table, derived from them. Pure: no I/O.
"""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa

F64, I64, STR = pa.float64(), pa.int64(), pa.string()

NAN = float("nan")


class TrialStatus(enum.StrEnum):
    """How a trial ended: its ``trials`` row's ``status``. Decided once, where the trial ends,
    and written once; a ``str``, so a row reads and compares as plain text."""

    COMPLETED = "completed"
    """Trained to its end; its row holds its results."""
    DUPLICATE = "duplicate"
    """TPE re-picked a configuration another trial trains: the same result, not trained again."""
    FAILED = "failed"
    """Its own code failed (diverged, no selectable epoch, an error): never run again."""
    STOPPED = "stopped"
    """Stopped early by ASHA: its values are what the searcher was told."""
    INTERRUPTED = "interrupted"
    """Ended without a result (a killed process, a full disk, cut off with the sweep): --resume trains it."""

    @property
    def has_result(self) -> bool:
        """Its row carries a trained result that the searcher is told again on --resume."""
        return self in (TrialStatus.COMPLETED, TrialStatus.DUPLICATE)

    @property
    def is_final(self) -> bool:
        """--resume never trains it again (every status but interrupted)."""
        return self is not TrialStatus.INTERRUPTED


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
    config_index: int = -1
    """Which configuration of its method the search asked for (0, 1, ...; 0: its published defaults
    when they run first): the order of a budget curve. -1: not known (outside a study, before ltray 0.3)."""


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
    """How the trial ended: a ``TrialStatus`` (completed, duplicate, failed, stopped, interrupted)."""
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
    config_index: int = -1
    """Which configuration of its method the search asked for, in order (0: the first; -1: not known)."""

    @classmethod
    def of(cls, meta: TrialMeta, **values) -> TrialRecord:
        return cls(**{f.name: getattr(meta, f.name) for f in fields(TrialMeta)}, **values)

    def columns(self) -> dict[str, list]:
        """One-row columns for :func:`table`."""
        return {f.name: [getattr(self, f.name)] for f in fields(self)}


@dataclass
class EpochRecord:
    """One epoch of a trial's history (rank 0): what ``fit`` records after the epoch, what its
    checkpoint keeps (as a plain dict) and, with the trial's key, one row of ``epochs``."""

    epoch: int
    lr: float
    train_loss: float
    val_bal_acc: float
    val_many: float
    val_medium: float
    val_few: float
    images_per_s: float
    epoch_s: float
    # only with train.track_test (the protocol-gap report; never selected on), else NaN
    test_bal_acc: float = NAN
    test_many: float = NAN
    test_medium: float = NAN
    test_few: float = NAN
    test_bal_acc_tau_oracle: float = NAN
    """The best test balanced accuracy over post-hoc tau (the exact curve, chosen on test)."""


TEST_EPOCH_METRICS = tuple(f.name for f in fields(EpochRecord) if f.name.startswith("test_"))


# renamed columns: files written before the rename read under the new name
RENAMED = {"test_bal_acc_posthoc1": "test_bal_acc_posthoc_tau1", "test_bal_acc_taunorm1": "test_bal_acc_taunorm_tau1"}
RENAMED_FROM = {new: old for old, new in RENAMED.items()}
_ARROW = {str: STR, int: I64, float: F64, dict: pa.map_(STR, F64)}


def _schema_of(cls) -> pa.Schema:
    hints = typing.get_type_hints(cls)
    return pa.schema([(f.name, _ARROW[hints[f.name]]) for f in fields(cls)])


SCHEMAS: dict[str, pa.Schema] = {
    "trials": _schema_of(TrialRecord),
    "epochs": pa.schema([("study", STR), ("trial_id", STR), *_schema_of(EpochRecord)]),
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
    # a multi-expert model's logits of each expert (its ``logits`` rows are their mean)
    "expert_logits": pa.schema([
        ("study", STR), ("trial_id", STR), ("split", STR), ("expert", I64), ("index", I64), ("label", I64),
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
