"""A study's tables read by tools nobody here wrote: each table folder is one Parquet dataset
with one schema, which pandas, pyarrow and DuckDB each read whole, the same rows as load_study."""

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fixtures_study import write_study
from ltray import results as R


@pytest.mark.parametrize("table", ["trials", "per_class", "shifts", "logits", "tau_curve", "virtual"])
def test_each_table_folder_reads_in_pandas_pyarrow_and_duckdb(tmp_path, table):
    study = write_study(tmp_path)
    ours = R.load_study(str(study), (table,))[table]
    folder = study / table
    assert len(pd.read_parquet(folder)) == ours.num_rows
    assert pq.read_table(folder).num_rows == ours.num_rows
    assert pq.read_table(folder).schema.names == ours.schema.names
    ((n,),) = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/*.parquet')").fetchall()
    assert n == ours.num_rows
