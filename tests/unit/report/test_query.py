"""python -m ltray.query: SQL over a stored study, checked against pyarrow/numpy on the same tables."""

import csv
import io
import json

import numpy as np
import pyarrow.compute as pc
import pytest

from conftest import run_cli
from fixtures_study import TRIALS, write_study
from ltray.report import query
from ltray import results as R


@pytest.fixture
def study(tmp_path):
    return str(write_study(tmp_path, with_optuna=False))


def _csv(capsys) -> list[dict]:
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_group_by_mean_equals_numpy(study, capsys):
    trials = R.load_study(study, ("trials",))["trials"]
    sql = "SELECT method, avg(test_bal_acc) AS mean, count(*) AS n FROM trials GROUP BY method ORDER BY method"
    assert query.main([study, sql, "--format", "csv"]) == 0
    got = _csv(capsys)
    methods = sorted(set(trials["method"].to_pylist()))
    assert [r["method"] for r in got] == methods
    for r in got:
        mine = trials.filter(pc.equal(trials["method"], r["method"]))["test_bal_acc"].to_numpy()
        assert float(r["mean"]) == pytest.approx(np.mean(mine), abs=1e-12) and int(r["n"]) == mine.size


def test_params_map_is_queryable_by_key(study, capsys):
    sql = ("SELECT trial_id, params['tau'] AS tau, element_at(params, 'power') AS power "
           "FROM trials ORDER BY trial_id")
    assert query.main([study, sql, "--format", "json"]) == 0
    got = {r["trial_id"]: r for r in json.loads(capsys.readouterr().out)}
    for tid, _, params, *_ in TRIALS:
        assert got[tid]["tau"] == params.get("tau")  # null where the method has no tau
        assert got[tid]["power"] == ([params["power"]] if "power" in params else [])


def test_where_on_a_map_value_and_a_join(study):
    res = query.run(study, "SELECT t.method, count(*) AS n FROM trials t JOIN per_class p USING (trial_id) "
                           "WHERE p.split = 'test' AND t.params['tau'] >= 2 GROUP BY ALL ORDER BY 1")
    assert res.columns == ["method", "n"]
    assert res.rows == [("dive", 5), ("logit_adjusted", 5)]  # tau 3.0 and 2.0; five classes each


def test_only_the_named_tables_are_read(study, capsys):
    bad = f"{study}/logits/broken.parquet"
    with open(bad, "wb") as f:
        f.write(b"PAR1 this is not parquet")
    assert query.tables_named("SELECT epochs_run, stage FROM Trials") == ("trials",)
    query.run(study, "SELECT count(*) FROM trials")
    assert "broken.parquet" not in capsys.readouterr().err
    n = query.run(study, "SELECT count(*) FROM logits").rows[0][0]  # the same file is named when it is asked for
    assert "warning: skipped unreadable results file" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="broken.parquet"):
        assert n == R.load_study(study, ("logits",))["logits"].num_rows


@pytest.mark.parametrize("sql, says", [
    ("SELEC method FROM trials", "syntax error"),
    ("SELECT * FROM trial", "trials, epochs, per_class"),  # an unknown table lists the real ones
    ("SELECT no_such_column FROM trials", "no_such_column"),
])
def test_bad_sql_is_one_error_line_and_exit_2(study, capsys, sql, says):
    assert query.main([study, sql]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0]


def test_a_missing_study_through_the_real_cli(tmp_path):
    p = run_cli(["-m", "ltray.query", str(tmp_path / "nope"), "SELECT 1"], timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"error: study folder {tmp_path / 'nope'} does not exist"]


def test_no_sql_lists_every_table(study, capsys):
    tables = R.load_study(study)
    assert query.main([study, "--format", "json"]) == 0
    got = {r["table"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(got) == [*R.TABLES[:1], "selected", *R.TABLES[1:]]
    for name, tbl in tables.items():
        assert got[name]["rows"] == tbl.num_rows
        assert [c.split(" ")[0] for c in got[name]["columns"].split(", ")] == tbl.schema.names
    assert "params map<string,double>" in got["trials"]["columns"]
    assert query.main([study]) == 0  # the default text listing
    text = capsys.readouterr().out
    assert all(f"\n{name} " in text for name in R.TABLES)


def test_text_is_aligned_and_output_goes_to_a_file(study, tmp_path, capsys):
    out = tmp_path / "q.md"
    sql = "SELECT trial_id, test_bal_acc, 'a|b' AS s FROM trials ORDER BY trial_id"
    assert query.main([study, sql, "--format", "markdown", "--output", str(out)]) == 0
    assert capsys.readouterr().out == ""
    rows = out.read_text().splitlines()
    assert rows[0] == "| trial_id | test_bal_acc | s |" and rows[2].endswith("| a\\|b |")
    assert query.main([study, sql]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rule, body = lines[0], lines[1], lines[2:-1]
    assert header.split() == ["trial_id", "test_bal_acc", "s"] and set(rule) <= {"-", " "}
    # the number column is right-aligned: every value ends where its heading ends
    end = header.index("test_bal_acc") + len("test_bal_acc")
    assert all(line[end - 1] != " " and line[end] == " " for line in body)
    assert lines[-1] == f"({len(TRIALS)} rows)"


def test_selected_is_the_summary_one_row_per_method_and_seed(study, capsys):
    """Naive SQL over trials mixes configurations; over ``selected`` its average is the summary's."""
    from ltray.report import method_summary

    sql = "SELECT method, avg(test_bal_acc) AS test, count(*) AS seeds FROM selected GROUP BY method ORDER BY method"
    assert query.main([study, sql, "--format", "csv"]) == 0
    got = {r["method"]: r for r in _csv(capsys)}
    summary = method_summary(R.load_study(study, ("trials",))["trials"])
    assert sorted(got) == [m["method"] for m in summary]
    for m in summary:
        assert float(got[m["method"]]["test"]) == pytest.approx(m["test_bal_acc"]["mean"], abs=1e-12)
        assert int(got[m["method"]]["seeds"]) == m["n"]
