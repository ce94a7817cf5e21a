"""Each report table laid out as rows of cells (``ltray.report.render``): captions, columns and
notes; every format writes the same cells."""

from __future__ import annotations

from ltray.core.longtail import shift_names
from ltray.core.metrics import SHOT_RANGES
from ltray.core.stats import mean_ci
from ltray.report.budget import budget_curves
from ltray.report.render import Column, Diff, Stat, Table, Value, text_lines
from ltray.report.select import method_summary
from ltray.report.tables import GROUPS, expert_table, gap_table, la_table, paired_table, shift_table


def la_report(trials) -> Table:
    rows = la_table(trials)
    return Table(caption="Balanced error (%) of the LA paper's Table 3 rows, mean +- 95% CI over seeds (n seeds)",
                 columns=(Column("balanced error (%)", 42, "<"), Column("mean +- 95% CI", sep=" ")),
                 rows=tuple((r["row"], Stat.of(r, show_n=True)) for r in rows), trial_ids=_used(rows))


METHOD_COLUMNS = (("val_bal_acc", "val bal-acc"), ("test_bal_acc", "test bal-acc"),
                  ("test_bal_acc_posthoc", "test + post-hoc"), ("test_few", "few"))


def methods_report(trials) -> Table:
    rows = method_summary(trials)
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
        cells.append((m, adj, *(Value(vals.get(n, float("nan")) * 100) for n in names),
                      Stat.of(_mean_over_shifts(tables, rows, m, adj))))
    transductive = any(r["adjustment"] == "sade_tta" for r in rows)
    return Table(caption="Test accuracy (%) on the shifted test sets (forwardR: imbalanced as in training, ratio R; "
                         "backwardR: reversed), mean over the selected configuration's seeds, per method and prior "
                         "adjustment; mean: over the 11 sets, +- its 95% CI over the seeds",
                 columns=(Column("method", 18, "<"), Column("adjustment", 13, "<"))
                 + tuple(Column(n, 8, ">", short=n[:4] + n[-2:]) for n in names) + (Column("mean +- CI", 16, ">"),),
                 rows=tuple(cells), trial_ids=_used(rows),
                 after=("sade_tta is transductive: SADE's expert weights learnt on each shifted set's own "
                        "unlabelled test images",) if transductive else ())


def experts_report(tables) -> Table:
    rows = expert_table(tables)
    return Table(caption="Test balanced accuracy (%) of each expert of a multi-expert method's selected configuration, "
                         "and of their mean (the method's prediction), mean +- 95% CI over seeds; shifts: accuracy "
                         "averaged over the 11 shifted test sets, no prior adjustment",
                 columns=(Column("method", 18, "<"), Column("expert", 22, "<"),
                          *(Column("overall" if g == GROUPS[0] else g, 16) for g in GROUPS), Column("shifts", 16)),
                 rows=tuple((r["method"], r["expert"], *(Stat.of(r[g]) for g in (*GROUPS, "shifts"))) for r in rows),
                 trial_ids=_used(rows),
                 after=() if rows else ("no multi-expert method (ride, sade, balpoe) in this study",))


def _mean_over_shifts(tables, rows: list[dict], method: str, adjustment: str) -> dict:
    """Each seed's accuracy averaged over the 11 shifted sets, then mean +- 95% CI over the seeds."""
    ids = {t for r in rows if r["method"] == method and r["adjustment"] == adjustment for t in r["trial_ids"]}
    per_trial: dict[str, list[float]] = {}
    for s in tables["shifts"].select(["trial_id", "adjustment", "accuracy"]).to_pylist():
        if s["trial_id"] in ids and s["adjustment"] == adjustment:
            per_trial.setdefault(s["trial_id"], []).append(s["accuracy"])
    return mean_ci([sum(v) / len(v) for v in per_trial.values()])


def paired_report(tables, baseline: str = "ce") -> Table:
    """The paired table: per row, test accuracy per group and the difference from the baseline."""
    rows = paired_table(tables, baseline)
    title = paired_caption(rows, baseline)
    cells = []
    for r in rows:
        d = r.get("vs_baseline", {}).get("bal_acc")
        cells.append((r["row"], *(Stat.of(r[g]) for g in GROUPS), "(baseline)" if d is None else Diff.of(d)))
    notes = [_group_note(rows, baseline, group) for group in ("few", "medium")]
    return Table(caption=title, before=(title,), after=tuple(notes), trial_ids=_used(rows),
                 columns=(Column("method", 24, "<"), Column("overall", 16), Column("many", 16), Column("medium", 16),
                          Column("few", 16), Column(f"vs {baseline} (overall)", align="<", sep="   ")),
                 rows=tuple(cells))


def paired_caption(rows: list[dict], baseline: str = "ce") -> str:
    """What the paired table's numbers are (the report's and the dashboard's heading)."""
    n = max((r["seeds"] for r in rows), default=0)
    m = max((r["vs_baseline"]["bal_acc"]["comparisons"] for r in rows if "vs_baseline" in r), default=0)
    return (f"test accuracy (%), mean +- 95% CI over {n} paired seed{'s' if n != 1 else ''}; difference vs {baseline}"
            + (": t interval over seeds and test images, p Holm-adjusted over "
               f"{m} comparison{'s' if m != 1 else ''}" if n > 1 else
               ": 1 seed, so no test (differences of two trained models only)"))


def _group_note(rows: list[dict], baseline: str, group: str) -> str:
    diffs = [(r["row"], r["vs_baseline"][group]) for r in rows if "vs_baseline" in r]
    diffs = [(name, Diff.of(d)) for name, d in diffs if d["diff"] == d["diff"]]
    if not diffs:
        return f"{group}-shot difference vs {baseline}: no class in the {group}-shot group ({SHOT_RANGES[group]} training images)"
    return f"{group}-shot difference vs {baseline}: " + "; ".join(f"{name} {d.text()}" for name, d in diffs)


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


def budget_report(trials, search: dict | None = None) -> list[Table]:
    """The budget curves (``ltray.report.budget``): test, then validation, balanced accuracy of
    each method's selected configuration after n = 1 .. N configurations; ``search``: the
    study's search settings (its experiment.json), for the sampler and the defaults-first rule."""
    search = search or {}
    curves = budget_curves(trials, search.get("sampler", "tpe"), search.get("search_defaults_first", True))
    top = max((c["configurations"] for c in curves), default=0)
    how = ("expected best of n random configurations (Dodge et al. 2019)" if search.get("sampler") == "random"
           else "best so far, in the order the search asked for them")
    first = "; budget 1: the published defaults" if search.get("search_defaults_first", True) else ""
    notes = tuple(f"{c['method']}: {c['note']}" for c in curves if c["note"])
    fewer = [f"{c['method']} {c['configurations']}" for c in curves if not c["note"] and c["configurations"] < top]
    if fewer and search.get("per_method"):
        notes += (f"fewer distinct configurations than search.per_method={search['per_method']} (a space without "
                  f"knobs holds one; a whole-number space may hold fewer): {', '.join(fewer)}",)
    elif fewer:
        notes += (f"unequal budgets: one search over all methods gave each what it chose ({', '.join(fewer)} of "
                  f"{top}); search.per_method gives every method the same",)
    used = frozenset(t for c in curves for p in c["points"] for t in p["trial_ids"])
    out = []
    for key, what in (("test", "Test"), ("val", "Validation")):
        title = (f"{what} balanced accuracy (%) of each method's validation-selected configuration after n "
                 f"configurations, mean +- 95% CI over seeds: {how}{first}")
        cells = []
        for c in curves:
            by_n = {p["n"]: Stat.of(p[key]) for p in c["points"]}
            cells.append((c["method"], str(c["configurations"]), *(by_n.get(n, "-") for n in range(1, top + 1))))
        out.append(Table(caption=title, before=(title,), after=notes if key == "val" else (), trial_ids=used,
                         columns=(Column("method", 18, "<"), Column("configs", 8))
                         + tuple(Column(f"n={n}", 15) for n in range(1, top + 1)), rows=tuple(cells)))
    return out


def _used(rows: list[dict]) -> frozenset[str]:
    return frozenset(t for r in rows for t in r["trial_ids"])


def paired_lines(tables, baseline: str = "ce") -> list[str]:
    """The paired table as the terminal shows it, one line per item."""
    return text_lines(paired_report(tables, baseline))


def gap_lines(tables, baseline: str = "ce") -> list[str]:
    """The protocol gap as the terminal shows it, one line per item."""
    return text_lines(gap_report(tables, baseline))


def report_tables(tables, which: str, baseline: str = "ce", search: dict | None = None) -> list[Table]:
    """The tables ``--table which`` prints (paired: the paired comparison, then the protocol gap;
    budget: test then validation budget curves, ``search`` the study's search settings)."""
    if which == "budget":
        return budget_report(tables["trials"], search)
    if which == "paired":
        return [paired_report(tables, baseline), gap_report(tables, baseline)]
    if which == "gap":
        return [gap_report(tables, baseline)]
    if which == "shifts":
        return [shifts_report(tables)]
    if which == "experts":
        return [experts_report(tables)]
    return [la_report(tables["trials"]) if which == "la" else methods_report(tables["trials"])]
