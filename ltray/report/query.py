"""SQL over a stored study's tables (DuckDB), one relation per table: trials, epochs, per_class, ...
and ``selected``: the ``trials`` rows of each method's selected configuration (one row per method
and seed; the selection every view shows), so that an average over it is the summary's.

    python -m ltray.query results/quickstart            # each table: rows and columns
    python -m ltray.query results/quickstart "SELECT method, avg(test_bal_acc) FROM selected GROUP BY method"
    python -m ltray.query results/quickstart "SELECT trial_id, params['tau'] AS tau FROM trials" --format csv

``params`` is a map<string, double>: ``params['tau']`` is the value, NULL for a method without
tau (DuckDB >= 1.2; before, a one-element list); ``element_at(params, 'tau')`` is that list.
Only the tables the SQL names are read, so a query over ``trials`` never loads ``logits``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import decimal
import io
import json
import math
import re
import signal
import sys
import threading
from typing import NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from ltray import results as R
from ltray.errors import LtrayError
from ltray.report.select import method_summary

FORMATS = ("text", "csv", "markdown", "json")
SELECTED = "selected"  # the relation of the selected configurations' trials rows
TIMEOUT_S = 300.0  # a query longer than this is stopped (--timeout)


class Result(NamedTuple):
    """A query's answer: column names and rows of plain Python values (a MAP is a dict)."""

    columns: list[str]
    rows: list[tuple]


def tables_named(sql: str) -> tuple[str, ...]:
    """The study tables whose names occur in ``sql`` as whole words (``trials``, not ``trials_x``);
    ``selected`` is made of ``trials``."""
    words = {w.lower() for w in re.findall(r"\w+", sql)}
    return tuple(t for t in R.TABLES if t in words or (t == "trials" and SELECTED in words))


def selected_rows(trials: pa.Table) -> pa.Table:
    """The rows of each method's selected configuration (``ltray.report.select``): one per seed."""
    ids = [tid for m in method_summary(trials) for tid in m["trial_ids"]]
    return trials.filter(pa.compute.is_in(trials["trial_id"], value_set=pa.array(ids, pa.string())))


def run(study: str, sql: str, timeout_s: float = TIMEOUT_S) -> Result:
    """Run ``sql`` with the tables it names registered as DuckDB relations of the same name. The
    query sees those tables and nothing else: no files (``read_csv``, ``COPY TO``, ``ATTACH``
    and extensions are refused), and it is stopped after ``timeout_s`` seconds or at Ctrl-C."""
    tables, damaged = R.read_study(study, tables_named(sql))
    for d in damaged:
        print(f"warning: skipped {d}", file=sys.stderr)
    con = duckdb.connect()
    try:
        # an unknown name must be an error, not a Python variable of this frame that DuckDB found
        con.execute("SET python_enable_replacements = false")
        for name, tbl in tables.items():
            con.register(name, tbl)
        if SELECTED in {w.lower() for w in re.findall(r"\w+", sql)}:
            con.register(SELECTED, selected_rows(tables["trials"]))
        con.execute("SET enable_external_access = false")  # the tables above, and no file of this machine
        con.execute("SET lock_configuration = true")  # the query cannot turn it back on
        return _execute(con, sql, timeout_s)
    finally:
        con.close()


def _start(worker: threading.Thread) -> None:
    """Start the query's thread with Ctrl-C held until it runs: a KeyboardInterrupt raised inside
    ``Thread.start`` would leave the query running with nothing to stop it (and closing the
    connection would then wait for it). In the main thread only, where Python runs handlers."""
    if threading.current_thread() is not threading.main_thread():
        worker.start()
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        worker.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def _stop(con, done: threading.Event) -> None:
    """Interrupt the query until its thread ends: an interrupt that lands before DuckDB has begun
    the query (a Ctrl-C right after the thread started) is lost, so it is sent again (every 0.1 s)."""
    con.interrupt()
    while not done.wait(0.1):
        con.interrupt()


def _execute(con: duckdb.DuckDBPyConnection, sql: str, timeout_s: float) -> Result:
    """The query in a thread, so that the timeout and Ctrl-C interrupt DuckDB (a query in the main
    thread ignores SIGINT until it ends). The main thread waits on an event, not on the thread:
    a Ctrl-C that lands in ``Thread.join`` leaves the thread marked as ended while it runs."""
    out: dict = {}
    done = threading.Event()

    def work():
        try:
            cur = con.execute(sql)
            columns = [d[0] for d in cur.description or []]
            out["result"] = Result(columns, cur.fetchall() if columns else [])
        except duckdb.Error as e:
            out["error"] = e
        finally:
            done.set()

    try:
        _start(threading.Thread(target=work, daemon=True))
        finished = done.wait(timeout_s if timeout_s > 0 else None)
    except KeyboardInterrupt:
        _stop(con, done)
        raise
    if not finished:
        _stop(con, done)
        raise LtrayError(f"SQL: stopped after {timeout_s:g} s (--timeout)")
    if "error" in out:
        raise LtrayError(_one_line(out["error"])) from None
    return out["result"]


def _one_line(e: duckdb.Error) -> str:
    """DuckDB's message without its multi-line caret picture; an unknown table lists the real ones."""
    text = " ".join(str(e).split("\n")[0].split())
    if isinstance(e, duckdb.CatalogException):
        text += f" (a study's tables: {', '.join(R.TABLES)})"
    return f"SQL: {text}"


def listing(study: str) -> Result:
    """Per table: its name, row count and columns, nested ones with their type (no space after its
    commas, so the list splits on ", "), read one table at a time so only one is in memory."""
    rows = []
    for name in R.TABLES:
        tables, damaged = R.read_study(study, (name,))
        for d in damaged:
            print(f"warning: skipped {d}", file=sys.stderr)
        tbl = tables[name]
        cols = [f"{f.name} {str(f.type).replace(', ', ',')}" if pa.types.is_nested(f.type) else f.name
                for f in tbl.schema]
        rows.append((name, tbl.num_rows, ", ".join(cols)))
        if name == "trials":
            rows.append((SELECTED, selected_rows(tbl).num_rows, "the trials columns: each method's selected "
                                                               "configuration, one row per seed"))
    return Result(["table", "rows", "columns"], rows)


def _plain(v):
    """A value as JSON has it: NaN and infinities as null, decimals as floats, dates as ISO text."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, decimal.Decimal):
        return _plain(float(v))
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


def _cell(v) -> str:
    """A value as one text cell: NULL for a null, nested values as JSON."""
    if v is None:
        return "NULL"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(_plain(v))
    return str(v)


def as_text(res: Result) -> str:
    """An aligned plain-text table: numbers to the right, everything else to the left."""
    cells = [[_cell(v) for v in row] for row in res.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(res.columns)]
    right = [all(isinstance(row[i], (int, float, decimal.Decimal)) or row[i] is None for row in res.rows)
             and not all(row[i] is None for row in res.rows) for i in range(len(res.columns))]

    def line(values):
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()

    out = [line(res.columns), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
    return "\n".join(out + [f"({len(res.rows)} row{'s' if len(res.rows) != 1 else ''})"]) + "\n"


def as_csv(res: Result) -> str:
    """CSV with a header row; NULL (and NaN) as an empty field, nested values as JSON."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(res.columns)
    for row in res.rows:
        w.writerow(["" if _plain(v) is None else _cell(v) for v in row])
    return buf.getvalue()


def as_markdown(res: Result) -> str:
    """A pipe table; a ``|`` inside a cell is escaped."""
    def line(values):
        return "| " + " | ".join(v.replace("\\", "\\\\").replace("|", "\\|") for v in values) + " |"

    out = [line(res.columns), "|" + "|".join("---" for _ in res.columns) + "|"]
    return "\n".join(out + [line([_cell(v) for v in row]) for row in res.rows]) + "\n"


def as_json(res: Result) -> str:
    """A JSON array of objects, one per row (NaN as null: JSON has no NaN)."""
    return json.dumps([{c: _plain(v) for c, v in zip(res.columns, row)} for row in res.rows], indent=1) + "\n"


RENDER = {"text": as_text, "csv": as_csv, "markdown": as_markdown, "json": as_json}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltray.query", description=__doc__.split("\n\n")[0],
                                epilog="example: python -m ltray.query results/quickstart "
                                       "\"SELECT method, params['tau'] AS tau, avg(test_bal_acc) FROM trials "
                                       "WHERE status = 'completed' GROUP BY ALL ORDER BY 3 DESC\"")
    p.add_argument("study", help="a study folder or URI (s3://..., gs://...)")
    p.add_argument("sql", nargs="?", help=f"a query over the tables {', '.join(R.TABLES)}; "
                                          "without it, each table's row count and columns")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (aligned, the default), csv, markdown or json")
    p.add_argument("--output", help="write to this file instead of standard output")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S,
                   help=f"stop a query after this many seconds (default {TIMEOUT_S:g}; 0: no limit)")
    try:
        a = p.parse_args(argv)  # inside: a Ctrl-C from the moment main() begins gets the one line below
        res = listing(a.study) if not a.sql or not a.sql.strip() else run(a.study, a.sql, a.timeout)
        out = RENDER[a.format](res)
        if a.output:
            try:
                with open(a.output, "w", encoding="utf-8") as f:
                    f.write(out)
            except OSError as e:
                raise LtrayError(f"cannot write {a.output}: {e.strerror or e}") from None
        else:
            sys.stdout.write(out)
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); the query was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
