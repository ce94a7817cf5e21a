"""A study on disk: what its tables hold (``schema``), reading and writing them (``io``), the
rows of one trial (``rows``), where they came from (``provenance``), the results disk
(``disk``), where the files live (``storage``: a folder or any ``pyarrow.fs`` URI) and where
Optuna keeps the search (``search_storage``). Imports core, pyarrow and (for the search only,
inside its functions) Optuna.

The names most callers need are here: ``from ltray import results as R``; ``R.load_study(...)``.
"""

from ltray.results.io import Damaged, finished_trials, load_study, read_study, study_file, write_table
from ltray.results.schema import (RENAMED, RENAMED_FROM, SCHEMAS, TABLES, TEST_EPOCH_METRICS, EpochRecord, TrialMeta,
                                  TrialRecord, TrialStatus, table)

__all__ = ["Damaged", "EpochRecord", "RENAMED", "RENAMED_FROM", "SCHEMAS", "TABLES", "TEST_EPOCH_METRICS", "TrialMeta", "TrialRecord",
           "TrialStatus", "finished_trials", "load_study", "read_study", "study_file", "table", "write_table"]
