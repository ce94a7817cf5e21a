"""Damaged files are loud: the report and SQL name every unreadable file in what they print, the
report exits non-zero when a method of the study is missing because of one; SQL sees the
study's tables and no file of the machine, and stops at its timeout or at Ctrl-C."""

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from fixtures_study import write_study
from ltray.report import cli as report
from ltray.report import query


@pytest.fixture()
def study(tmp_path):
    path = write_study(tmp_path)
    (path / "experiment.json").write_text(json.dumps({"name": "fx", "methods": ["ce", "logit_adjusted", "dive"]}))
    return path


def _cut(path):
    path.write_bytes(path.read_bytes()[:30])


def test_an_unreadable_trials_file_is_named_and_a_missing_method_fails_the_report(study, capsys):
    _cut(study / "trials" / "t4.parquet")  # logit_adjusted keeps t5
    assert report.main([str(study)]) == 0
    out = capsys.readouterr().out
    assert "note: skipped unreadable results file" in out and "t4.parquet" in out
    _cut(study / "trials" / "t6.parquet")  # dive's only trial
    assert report.main([str(study), "--format", "markdown"]) == 1
    captured = capsys.readouterr()
    assert "skipped, unreadable" in captured.out and "t6.parquet" in captured.out  # in the provenance
    assert "error: no result of dive could be read" in captured.err


def test_sql_names_unreadable_files_and_reaches_no_file_of_the_machine(study, capsys):
    _cut(study / "trials" / "t1.parquet")
    assert query.run(str(study), "SELECT count(*) FROM trials").rows == [(5,)]
    assert "t1.parquet" in capsys.readouterr().err
    for sql in ("SELECT * FROM read_csv('/etc/passwd')", f"COPY (SELECT 1) TO '{study}/out.csv'",
                f"ATTACH '{study}/x.db'", "SET enable_external_access = true"):
        with pytest.raises(Exception, match="disabled by configuration|locked"):
            query.run(str(study), sql)
    assert not (study / "out.csv").exists() and not (study / "x.db").exists()
    with pytest.raises(Exception, match=r"stopped after 0.5 s"):
        query.run(str(study), "SELECT sum(a.range * 2) FROM range(100000000000) a", timeout_s=0.5)


def test_ctrl_c_stops_a_runaway_query(study):
    # SIGINT at its default in the child, as in a terminal: a runner started in the background
    # (`cmd &` in a script) ignores SIGINT, its children inherit that, and Python then installs no
    # KeyboardInterrupt handler at all. The child says when main() begins: a fixed sleep instead
    # sent the Ctrl-C during the imports on a loaded machine (then Python's own traceback, exit -2)
    code = ("import sys; from ltray.query import main; print('main', file=sys.stderr, flush=True); "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(study),
                             "SELECT sum(a.range * 2) FROM range(100000000000) a", "--timeout", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stderr.readline() == "main\n"
        time.sleep(2)  # a Ctrl-C at any point after main() begins must stop it: wherever it is now
        assert proc.poll() is None
        t0 = time.time()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "interrupted" in err and time.time() - t0 < 10, (proc.returncode, err)
    finally:
        proc.kill()  # never leave a runaway query behind a failed assertion


def test_a_ctrl_c_before_duckdb_begins_the_query_still_stops_it():
    """The race CI hit under load: Ctrl-C lands after the query's thread started but before DuckDB
    began the query, so the first interrupt finds nothing to stop. Placed exactly: a real SIGINT
    to the main thread once the thread has started, and the query begins only once the first
    interrupt has been sent."""
    import threading

    import duckdb

    from ltray.report.query import _execute

    con = duckdb.connect()
    interrupted, started = threading.Event(), threading.Event()

    class Late:  # DuckDB's connection, whose execute waits for the first interrupt
        def execute(self, sql):
            started.set()
            interrupted.wait()
            return con.execute(sql)

        def interrupt(self):
            con.interrupt()  # before the query begins: DuckDB has nothing to stop yet
            interrupted.set()

    main = threading.main_thread().ident
    threading.Thread(target=lambda: (started.wait(), signal.pthread_kill(main, signal.SIGINT)), daemon=True).start()
    t0 = time.time()
    with pytest.raises(KeyboardInterrupt):
        _execute(Late(), "SELECT sum(a.range * 2) FROM range(6000000000) a", 0)
    assert time.time() - t0 < 5  # stopped, not run to its end (15 s or more)
    assert interrupted.is_set()


def test_a_ctrl_c_inside_thread_start_is_held_until_the_query_thread_runs(monkeypatch):
    """A SIGINT that arrives while the query's thread is being started is held, then raised once
    it has started (so the query is interrupted, not left running)."""
    import threading

    from ltray.report import query as q

    real_start = threading.Thread.start

    def start_with_a_signal(self):
        signal.raise_signal(signal.SIGINT)  # lands inside Thread.start
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start_with_a_signal)
    ran = threading.Event()
    with pytest.raises(KeyboardInterrupt):
        q._start(threading.Thread(target=ran.set, daemon=True))
    assert ran.wait(5)  # the thread was started before the interrupt was raised
