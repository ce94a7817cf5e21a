"""Tables from a stored study: per method (and configuration), mean +- 95% CI over seeds.

    python -m ltray.report results/la_table --table la       # the LA paper's Table 3 rows
    python -m ltray.report results/quickstart                # best configuration per method
    python -m ltray.report results/lade_shift --table shifts # the LADE shifted-test table
    python -m ltray.report results/fashion_lt --table paired # paired comparison vs CE + protocol gap
    python -m ltray.report results/fashion_tuned --table budget  # each method after n configurations
    python -m ltray.report results/la_table --table la --format latex --output table3.tex  # for a paper

Every table is built once as rows of cells (``ltray.report.render``); --format only chooses how they are
written, and the non-text formats add where the numbers came from (experiment file, subset
hashes, code versions).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys

import pyarrow as pa
import pyarrow.compute as pc

from ltray import results as R
from ltray.errors import LtrayError
from ltray.report.budget import search_settings
from ltray.report.layouts import report_tables
from ltray.report.select import method_summary
from ltray.report.render import Provenance, as_html, as_latex, as_markdown, as_text


def provenance(study: str, trials, trial_ids: frozenset[str], command: str, date: str,
               where: str | None = None) -> Provenance:
    """What a table came from: the study's experiment files and, from the trials it uses, their
    subset hashes per method and seed, code versions and package versions. ``where``: the
    study as printed (default ``study``)."""
    used = trials.filter(pc.is_in(trials["trial_id"], pa.array(sorted(trial_ids), pa.string())))
    rows = used.select(["study", "method", "seed", "subset_hash", "code_version", "versions"]).to_pylist()
    subsets: dict[str, list[tuple[int, str]]] = {}
    for r in sorted(rows, key=lambda r: (r["method"], r["seed"], r["subset_hash"] or "")):
        subsets.setdefault(r["method"], []).append((r["seed"], r["subset_hash"] or ""))
    names = sorted({r["study"] for r in rows if r["study"]})

    def distinct(col: str) -> tuple[str, ...]:
        return tuple(sorted({r[col] for r in rows if r[col]}))

    where = where or study
    return Provenance(study=f"{', '.join(names)} ({where})" if names else where, command=command, date=date,
                      code_versions=distinct("code_version"), versions=distinct("versions"),
                      subsets=tuple((m, tuple(v)) for m, v in subsets.items()),
                      files=tuple((name, R.study_file(study, name) or "") for name in EXPERIMENT_FILES))


EXPERIMENT_FILES = ("experiment.py", "experiment.json")  # the source, and its values after --set overrides
FORMATS = {"latex": as_latex, "markdown": as_markdown, "html": as_html}
NEEDS = {"paired": ("trials", "logits", "per_class", "epochs"), "gap": ("trials", "epochs"),
         "shifts": ("trials", "shifts"), "experts": ("trials", "expert_logits", "per_class")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltray.report", description=__doc__.split("\n\n")[0])
    p.add_argument("study", help="a study folder or URI, e.g. results/quickstart")
    p.add_argument("--table", choices=("methods", "la", "shifts", "paired", "gap", "budget", "experts"),
                   default="methods",
                   help="paired: every method against --baseline on paired seeds, then the protocol gap; "
                        "experts: each expert of a multi-expert method, and their mean; "
                        "gap: the protocol gap alone; budget: each method's selected configuration after "
                        "n = 1 .. N configurations (search.per_method)")
    p.add_argument("--baseline", default="ce", help="the method the paired table compares against (default ce)")
    p.add_argument("--budget", type=int, default=0, metavar="N",
                   help="as if the search had stopped after each method's first N configurations (budget 1: the "
                        "published defaults); every table then selects among those only (default: all)")
    p.add_argument("--format", choices=("text", *FORMATS), default="text",
                   help="text (the terminal's, default); latex (booktabs), markdown or html (a standalone page) "
                        "with the study's provenance")
    p.add_argument("--output", help="write to this file instead of standard output")
    a = p.parse_args(argv)
    try:
        if a.budget < 0:
            raise LtrayError(f"--budget must be >= 1 (0: every configuration), got {a.budget}")
        tables, damaged = _read(a.study, a.table, a.budget)
        out = report_tables(tables, a.table, a.baseline, search_settings(a.study))
        skipped = tuple(str(d) for d in damaged)
        if a.format == "text":
            text = as_text(out) + "".join(f"note: skipped {s}\n" for s in skipped)
        else:
            where = a.study.split("?", 1)[0]  # a URI's options may hold credentials: not printed
            command = f"python -m ltray.report {where} --table {a.table}" + (
                f" --baseline {a.baseline}" if a.table in ("paired", "gap") else "") + (
                f" --budget {a.budget}" if a.budget else "")
            used = frozenset().union(*(t.trial_ids for t in out))
            prov = provenance(a.study, tables["trials"], used, command, datetime.date.today().isoformat(), where)
            text = FORMATS[a.format](out, dataclasses.replace(prov, skipped=skipped))
        _write(text, a.output)
        missing = _missing_methods(a.study, tables["trials"], damaged)
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if missing:
        print(f"error: no result of {', '.join(missing)} could be read: {len(damaged)} results file(s) of this "
              "study are unreadable (named above); the table lacks them", file=sys.stderr)
        return 1
    return 0


def _read(study: str, table: str, budget: int = 0) -> tuple[dict, list[R.Damaged]]:
    """The tables ``--table`` needs: every trial's row (with ``budget``, those of each method's
    first ``budget`` configurations), and the larger tables of the trials of each method's
    selected configuration only (the paired table reads their logits, not all)."""
    tables, damaged = R.read_study(study, ("trials",))
    if budget:
        tables["trials"] = within_budget(tables["trials"], budget)
    rest = tuple(n for n in NEEDS.get(table, ()) if n != "trials")
    if rest:
        ids = [tid for m in method_summary(tables["trials"]) for tid in m["trial_ids"]]
        more, also = R.read_study(study, rest, ids)
        tables, damaged = {**tables, **more}, damaged + also
    return tables, damaged


def within_budget(trials: pa.Table, budget: int) -> pa.Table:
    """The rows of each method's first ``budget`` configurations (``config_index`` < budget)."""
    if trials.num_rows and trials["config_index"].null_count == trials.num_rows:
        raise LtrayError("--budget needs each trial's configuration order, recorded since ltray 0.3; this study has none")
    return trials.filter(pc.less(trials["config_index"], budget))


def _missing_methods(study: str, trials, damaged: list[R.Damaged]) -> list[str]:
    """The study's methods (its experiment.json) without a completed trial, when unreadable
    ``trials`` files may be why."""
    if not any(d.table == "trials" for d in damaged):
        return []
    try:
        methods = json.loads(R.study_file(study, "experiment.json") or "{}").get("methods") or []
    except ValueError:
        methods = []
    have = {r["method"] for r in trials.to_pylist() if r["status"] == R.TrialStatus.COMPLETED}
    return [m for m in methods if m not in have] or (["some methods"] if not methods else [])


def _write(text: str, path: str | None) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise LtrayError(f"cannot write {path}: {e.strerror or e}") from None
