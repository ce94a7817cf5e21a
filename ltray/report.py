"""Tables from a stored study: per method (and configuration), mean +- 95% CI over seeds.

    python -m ltray.report results/la_table --table la       # the LA paper's Table 3 rows
    python -m ltray.report results/quickstart                # best configuration per method
    python -m ltray.report results/lade_shift --table shifts # the LADE shifted-test table
    python -m ltray.report results/fashion_lt --table paired # paired comparison vs CE + protocol gap
    python -m ltray.report results/la_table --table la --format latex --output table3.tex  # for a paper

Every table is built once as rows of cells (``ltray.render``); --format only chooses how they are
written, and the non-text formats add where the numbers came from (experiment file, subset
hashes, code versions).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltray import results as R
from ltray.core.longtail import shift_names
from ltray.core.metrics import FEW_SHOT, MANY_SHOT
from ltray.errors import LtrayError
from ltray.render import (Column, Diff, Provenance, Stat, Table, Value, as_html, as_latex, as_markdown, as_text,
                          text_lines)
from ltray.stats import mean_ci, paired_difference


def configurations(trials) -> dict[tuple, list[dict]]:
    """Completed trials grouped by (method, hyperparameters): the seeds of one configuration."""
    groups: dict[tuple, list[dict]] = {}
    for r in trials.to_pylist():
        if r["status"] != "completed":
            continue
        key = (r["method"], json.dumps(sorted(dict(r["params"] or []).items())))
        groups.setdefault(key, []).append(r)
    return groups


def best_configurations(trials, objective: str | None = None) -> dict[str, list[dict]]:
    """Per method, the seeds of its configuration with the best mean validation objective: the
    study's own (its first search objective, which every row records; ``val_bal_acc`` for rows
    from before it was recorded), which is what the searcher averaged over repeats. The one
    selection the CLI summary, ``ltray.report`` and the dashboard use."""
    best: dict[str, tuple[float, list[dict]]] = {}
    groups = configurations(trials)
    if objective is None:
        recorded = {r.get("objective") for rows in groups.values() for r in rows} - {None, ""}
        objective = recorded.pop() if len(recorded) == 1 else "val_bal_acc"
    for (method, _), rows in groups.items():
        score = float(np.mean([r[objective] for r in rows]))
        if method not in best or score > best[method][0]:
            best[method] = (score, rows)
    return {m: rows for m, (_, rows) in sorted(best.items())}


# (row label, method, column) of the LA paper's Table 3; post-hoc rows reuse the ERM trials
LA_ROWS = (
    ("ERM", "ce", "test_bal_acc"),
    ("Weight normalisation (tau = 1)", "ce", "test_bal_acc_taunorm_tau1"),
    ("Weight normalisation (tau = tau*)", "ce", "test_bal_acc_taunorm"),
    ("Adaptive margin (LDAM-DRW)", "ldam_drw", "test_bal_acc"),
    ("Equalised loss", "equalization", "test_bal_acc"),
    ("Logit adjustment post-hoc (tau = 1)", "ce", "test_bal_acc_posthoc_tau1"),
    ("Logit adjustment post-hoc (tau = tau*)", "ce", "test_bal_acc_posthoc"),
    ("Logit adjustment loss", "logit_adjusted", "test_bal_acc"),
)


def _ids(rows: list[dict]) -> list[str]:
    return [r["trial_id"] for r in rows]


def la_table(trials) -> list[dict]:
    """Balanced error (%) per row, mean +- 95% CI over seeds; a row without its method is absent."""
    best = best_configurations(trials)
    out = []
    for label, method, col in LA_ROWS:
        if method in best:
            s = mean_ci([1.0 - r[col] if r[col] is not None else None for r in best[method]])
            out.append({"row": label, **s, "trial_ids": _ids(best[method])})
    return out


def method_table(trials) -> list[dict]:
    out = []
    for method, rows in best_configurations(trials).items():
        out.append({"method": method, "params": dict(rows[0]["params"] or []), "trial_ids": _ids(rows),
                    **{k: mean_ci([r[k] for r in rows]) for k in
                       ("val_bal_acc", "test_bal_acc", "test_bal_acc_posthoc", "test_many", "test_medium", "test_few")}})
    return out


def shift_table(tables) -> list[dict]:
    """Mean accuracy per (method, adjustment, shifted set) over the best configuration's seeds."""
    best = best_configurations(tables["trials"])
    ids = {r["trial_id"]: m for m, rows in best.items() for r in rows}
    acc: dict[tuple, list[float]] = {}
    used: dict[tuple, list[str]] = {}
    for s in tables["shifts"].to_pylist():
        if s["trial_id"] in ids:
            key = (ids[s["trial_id"]], s["adjustment"], s["shift"])
            acc.setdefault(key, []).append(s["accuracy"])
            used.setdefault(key, []).append(s["trial_id"])
    return [{"method": m, "adjustment": a, "shift": sh, **mean_ci(v), "trial_ids": used[(m, a, sh)]}
            for (m, a, sh), v in sorted(acc.items())]


GROUPS = ("bal_acc", "many", "medium", "few")  # the balanced accuracy over all classes, then per shot group


def group_masks(train_counts) -> dict[str, np.ndarray]:
    """Boolean masks (C,) of the classes in each group (many > 100, few < 20 training images)."""
    n = np.asarray(train_counts)
    return {"bal_acc": np.ones(n.size, bool), "many": n > MANY_SHOT, "medium": (n <= MANY_SHOT) & (n >= FEW_SHOT),
            "few": n < FEW_SHOT}


def _variants(best: dict, baseline: str) -> list[tuple[str, str, str]]:
    """(row label, method, variant) of the compared rows: each method's selected configuration as
    trained, and the baseline with post-hoc logit adjustment (tau* from validation)."""
    return [(m, m, "raw") for m in best] + [(f"{baseline} + post-hoc LA", baseline, "posthoc")]


def _column(variant: str, group: str) -> str:
    return f"test_{group}" + ("_posthoc" if variant == "posthoc" else "")


def _test_logits(tables, trial_ids) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """trial_id -> (labels (N,), test logits (N, C), train counts (C,)), read from the stored tables
    once (filtered in Arrow, then one conversion), not once per trial."""
    ids = pa.array(sorted(trial_ids))
    lg = tables["logits"]
    lg = lg.filter(pc.and_(pc.equal(lg["split"], "test"), pc.is_in(lg["trial_id"], ids)))
    pcl = tables["per_class"]
    pcl = pcl.filter(pc.and_(pc.equal(pcl["split"], "test"), pc.is_in(pcl["trial_id"], ids)))
    out = {}
    tid_col, index, label = (lg[c].to_numpy(zero_copy_only=False) for c in ("trial_id", "index", "label"))
    flat = pc.list_flatten(lg["logits"]).to_numpy(zero_copy_only=False)
    width = flat.size // max(lg.num_rows, 1)
    logits = flat.reshape(lg.num_rows, width) if lg.num_rows else flat.reshape(0, 0)
    c_tid, c_cls, c_cnt = (pcl[c].to_numpy(zero_copy_only=False) for c in ("trial_id", "class_id", "train_count"))
    for tid in trial_ids:
        rows, cls = np.flatnonzero(tid_col == tid), np.flatnonzero(c_tid == tid)
        if rows.size == 0 or cls.size == 0:
            raise LtrayError(f"trial {tid} has no stored test logits; the paired comparison needs them")
        rows = rows[np.argsort(index[rows])]
        counts = np.zeros(int(c_cls[cls].max()) + 1)
        counts[c_cls[cls]] = c_cnt[cls]
        out[tid] = (label[rows].astype(np.int64), logits[rows].astype(np.float64), counts)
    return out


def _correct(stored: tuple, trial: dict, variant: str) -> np.ndarray:
    """Per test image, right or wrong; the post-hoc variant applies the trial's tau* (0 for
    balanced logits) to the training prior, as its row's post-hoc figures do."""
    y, f, counts = stored
    if variant == "posthoc" and trial["tau_star"]:
        f = f - trial["tau_star"] * np.log(counts / counts.sum())
    return f.argmax(1) == y


def paired_table(tables, baseline: str = "ce", replicates: int = 4000, objective: str | None = None) -> list[dict]:
    """Per compared row: test accuracy per group (mean +- 95% t-interval over seeds) and its paired
    difference from ``baseline`` (seed k against seed k: same subset and initial weights),
    with a bootstrap over seeds and test images (``ltray.stats.paired_difference``)."""
    from ltray.datasets import get_dataset  # imports torch (the dataset registry): only this table needs it

    best = best_configurations(tables["trials"], objective)
    if baseline not in best:
        raise LtrayError(f"no completed {baseline!r} trials to compare against; name another with --baseline "
                         f"(methods here: {', '.join(best) or 'none'})")
    base = {r["repeat"]: r for r in best[baseline]}
    stored = _test_logits(tables, {r["trial_id"] for rows in best.values() for r in rows})
    shared = get_dataset(best[baseline][0]["dataset"]).fixed_test
    out = []
    for label, method, variant in _variants(best, baseline):
        runs = {r["repeat"]: r for r in best[method]}
        seeds = sorted(k for k in runs if k in base and runs[k]["subset_hash"] == base[k]["subset_hash"])
        row = {"row": label, "method": method, "variant": variant, "seeds": len(seeds),
               "trial_ids": _ids([runs[k] for k in seeds] + [base[k] for k in seeds]),
               **{g: mean_ci([runs[k][_column(variant, g)] for k in seeds]) for g in GROUPS}}
        if (method, variant) != (baseline, "raw") and seeds:
            a = np.stack([_correct(stored[runs[k]["trial_id"]], runs[k], variant) for k in seeds])
            b = np.stack([_correct(stored[base[k]["trial_id"]], base[k], "raw") for k in seeds])
            y = np.stack([stored[runs[k]["trial_id"]][0] for k in seeds])
            counts = stored[base[seeds[0]]["trial_id"]][2]
            row["vs_baseline"] = paired_difference(a, b, y, counts.size, group_masks(counts), shared, replicates)
        out.append(row)
    return out


def gap_table(tables, baseline: str = "ce", objective: str | None = None) -> list[dict]:
    """The protocol gap per compared row and group: the test accuracy a study would publish if it
    chose the epoch (and, with post-hoc LA, tau) on test, minus ltray's validation-chosen figure;
    mean +- 95% CI over seeds. Needs ``train.track_test`` (the epochs' test columns)."""
    best = best_configurations(tables["trials"], objective)
    epochs: dict[str, list[dict]] = {}
    for e in tables["epochs"].to_pylist():
        epochs.setdefault(e["trial_id"], []).append(e)
    out = []
    for label, method, variant in _variants(best, baseline) if baseline in best else []:
        chosen_on_test: dict[str, list[float]] = {g: [] for g in GROUPS}
        optimism: dict[str, list[float]] = {g: [] for g in GROUPS}
        for r in best[method]:
            rows = [e for e in epochs.get(r["trial_id"], []) if e["test_bal_acc"] == e["test_bal_acc"]]
            if not rows:
                continue
            if variant == "posthoc":  # epoch and tau both chosen on test: the exact curve's best, per epoch
                on_test = {"bal_acc": max(e["test_bal_acc_tau_oracle"] for e in rows)}
            else:
                top = max(rows, key=lambda e: e["test_bal_acc"])  # the first of the best, as a test-selecting repo
                on_test = {g: top[f"test_{g}"] for g in GROUPS}
            for g in GROUPS:
                v = on_test.get(g, float("nan"))
                chosen_on_test[g].append(v)
                optimism[g].append(v - r[_column(variant, g)])
        out.append({"row": label, "method": method, "variant": variant, "trial_ids": _ids(best[method]),
                    **{g: {"on_test": mean_ci(chosen_on_test[g]),
                           "on_val": mean_ci([r[_column(variant, g)] for r in best[method]]),
                           "optimism": mean_ci(optimism[g])} for g in GROUPS}})
    return out


def la_report(trials) -> Table:
    rows = la_table(trials)
    return Table(caption="Balanced error (%) of the LA paper's Table 3 rows, mean +- 95% CI over seeds (n seeds)",
                 columns=(Column("balanced error (%)", 42, "<"), Column("mean +- 95% CI", sep=" ")),
                 rows=tuple((r["row"], Stat.of(r, show_n=True)) for r in rows), trial_ids=_used(rows))


METHOD_COLUMNS = (("val_bal_acc", "val bal-acc"), ("test_bal_acc", "test bal-acc"),
                  ("test_bal_acc_posthoc", "test + post-hoc"), ("test_few", "few"))


def methods_report(trials) -> Table:
    rows = method_table(trials)
    return Table(caption="Balanced accuracy (%) of each method's selected configuration, mean +- 95% CI over "
                         "seeds (n seeds); few: test accuracy on the few-shot classes",
                 columns=(Column("method", 18, "<"),) + tuple(Column(t, 22, ">", " ") for _, t in METHOD_COLUMNS),
                 rows=tuple((r["method"], *(Stat.of(r[k], show_n=True) for k, _ in METHOD_COLUMNS)) for r in rows),
                 trial_ids=_used(rows))


def shifts_report(tables) -> Table:
    rows = shift_table(tables)
    names = [n for n, _, _ in shift_names()]
    cells = []
    for m, adj in sorted({(r["method"], r["adjustment"]) for r in rows}):
        vals = {r["shift"]: r["mean"] for r in rows if r["method"] == m and r["adjustment"] == adj}
        cells.append((m, adj, *(Value(vals.get(n, float("nan")) * 100) for n in names)))
    return Table(caption="Test accuracy (%) on the shifted test sets (forwardR: imbalanced as in training, ratio R; "
                         "backwardR: reversed), mean over the selected configuration's seeds, per method and prior "
                         "adjustment",
                 columns=(Column("method", 18, "<"), Column("adjustment", 13, "<"))
                 + tuple(Column(n, 8, ">", short=n[:4] + n[-2:]) for n in names),
                 rows=tuple(cells), trial_ids=_used(rows))


def paired_report(tables, baseline: str = "ce") -> Table:
    """The paired table: per row, test accuracy per group and the difference from the baseline."""
    rows = paired_table(tables, baseline)
    n = max(r["seeds"] for r in rows)
    title = (f"test accuracy (%), mean +- 95% CI over {n} paired seeds; difference vs {baseline}: paired bootstrap "
             "over seeds and test images")
    cells = []
    for r in rows:
        d = r.get("vs_baseline", {}).get("bal_acc")
        vs = "(baseline)" if d is None else Diff(d["diff"] * 100, d["lo"] * 100, d["hi"] * 100, d["p"])
        cells.append((r["row"], *(Stat.of(r[g]) for g in GROUPS), vs))
    notes = []
    for group in ("few", "medium"):
        diffs = [(r["row"], r["vs_baseline"][group]) for r in rows if "vs_baseline" in r]
        diffs = [(name, d) for name, d in diffs if d["diff"] == d["diff"]]
        notes.append(f"{group}-shot difference vs {baseline}: " + ("; ".join(
            f"{name} {d['diff'] * 100:+.2f} [{d['lo'] * 100:+.2f}, {d['hi'] * 100:+.2f}]" for name, d in diffs)
            or f"no class in the {group}-shot group ({'< 20' if group == 'few' else '20-100'} training images)"))
    return Table(caption=title, before=(title,), after=tuple(notes), trial_ids=_used(rows),
                 columns=(Column("method", 24, "<"), Column("overall", 16), Column("many", 16), Column("medium", 16),
                          Column("few", 16), Column(f"vs {baseline} (overall)", align="<", sep="   ")),
                 rows=tuple(cells))


def gap_report(tables, baseline: str = "ce") -> Table:
    """The protocol gap (or one line saying how to get it)."""
    rows = gap_table(tables, baseline)
    if not rows or all(r["bal_acc"]["on_test"]["n"] == 0 for r in rows):
        line = "protocol gap: no per-epoch test results stored; run the study with train.track_test=true"
        return Table(caption=line, before=(line,))
    title = ("protocol gap: test accuracy (%) with the epoch (and tau) chosen on test vs chosen on validation; "
             "optimism in points, mean +- 95% CI over seeds")
    cells = tuple((r["row"], Stat.of(r["bal_acc"]["on_val"]), Stat.of(r["bal_acc"]["on_test"]),
                   Stat.of(r["bal_acc"]["optimism"]), *(Stat.of(r[k]["optimism"]) for k in ("many", "medium", "few")))
                  for r in rows)
    return Table(caption=title, before=(title,), rows=cells, trial_ids=_used(rows),
                 columns=(Column("method", 24, "<"), Column("chosen on val", 16), Column("chosen on test", 16),
                          Column("optimism", 16), Column("many (optimism)", 14, short="many"),
                          Column("medium (optimism)", 14, short="medium"), Column("few (optimism)", 14, short="few")))


def _used(rows: list[dict]) -> frozenset[str]:
    return frozenset(t for r in rows for t in r["trial_ids"])


def paired_lines(tables, baseline: str = "ce") -> list[str]:
    """The paired table as the terminal shows it, one line per item."""
    return text_lines(paired_report(tables, baseline))


def gap_lines(tables, baseline: str = "ce") -> list[str]:
    """The protocol gap as the terminal shows it, one line per item."""
    return text_lines(gap_report(tables, baseline))


def report_tables(tables, which: str, baseline: str = "ce") -> list[Table]:
    """The tables ``--table which`` prints (paired: the paired comparison, then the protocol gap)."""
    if which == "paired":
        return [paired_report(tables, baseline), gap_report(tables, baseline)]
    if which == "gap":
        return [gap_report(tables, baseline)]
    if which == "shifts":
        return [shifts_report(tables)]
    return [la_report(tables["trials"]) if which == "la" else methods_report(tables["trials"])]


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
         "shifts": ("trials", "shifts")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltray.report", description=__doc__.split("\n\n")[0])
    p.add_argument("study", help="a study folder or URI, e.g. results/quickstart")
    p.add_argument("--table", choices=("methods", "la", "shifts", "paired", "gap"), default="methods",
                   help="paired: every method against --baseline on paired seeds, then the protocol gap; "
                        "gap: the protocol gap alone")
    p.add_argument("--baseline", default="ce", help="the method the paired table compares against (default ce)")
    p.add_argument("--format", choices=("text", *FORMATS), default="text",
                   help="text (the terminal's, default); latex (booktabs), markdown or html (a standalone page) "
                        "with the study's provenance")
    p.add_argument("--output", help="write to this file instead of standard output")
    a = p.parse_args(argv)
    try:
        tables = R.load_study(a.study, NEEDS.get(a.table, ("trials",)))
        out = report_tables(tables, a.table, a.baseline)
        if a.format == "text":
            text = as_text(out)
        else:
            where = a.study.split("?", 1)[0]  # a URI's options may hold credentials: not printed
            command = f"python -m ltray.report {where} --table {a.table}" + (
                f" --baseline {a.baseline}" if a.table in ("paired", "gap") else "")
            used = frozenset().union(*(t.trial_ids for t in out))
            text = FORMATS[a.format](out, provenance(a.study, tables["trials"], used, command,
                                                     datetime.date.today().isoformat(), where))
        _write(text, a.output)
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _write(text: str, path: str | None) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise LtrayError(f"cannot write {path}: {e.strerror or e}") from None


if __name__ == "__main__":
    sys.exit(main())
