"""The comparisons of a study's methods, tail first: the paired differences from the baseline per
shot group (table and figure: the numbers and caption of ``ltray.report --table paired``),
the protocol gap, the shifted test sets (colour by method, line style by rule, intervals over
seeds, and the mean over the shifts), the tuning budget, and studies side by side. Each figure
is an ``*_info`` (plain lists, tested) and a thin drawer, in the vocabulary of ``style``."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa

from dashboard.style import SHOT_COLORS, empty, method_color, pct_ci, shot_labels, titled
from ltray.core.longtail import shift_names
from ltray.core.metrics import OVERALL
from ltray.core.stats import mean_ci
from ltray.errors import LtrayError
from ltray.report import (GROUPS, best_configurations, expert_table, budget_curves, gap_table, method_summary, paired_caption,
                          paired_table, shift_table)
from ltray.report.render import Diff

PAIRED_COLUMNS = ("row", "seeds", *GROUPS, *(f"vs {g}" for g in GROUPS))
SHIFT_ORDER = [n for n, _, _ in shift_names()]
RULES = {"none": ("no adjustment", "solid"), "pc_true": ("PC, true prior", "dash"), "pc_em": ("PC, EM prior", "dot"),
         "sade_tta": ("SADE test-time aggregation (transductive)", "longdash")}


# ---------------------------------------------------------------- paired comparison
def paired_view(tables: dict, baseline: str = "ce") -> dict:
    """The paired table's rows, best overall test accuracy first (the baseline's row among them),
    as cells: each group's accuracy (%, mean ± 95% CI) and its difference from the baseline (points,
    interval, Holm-adjusted p, verdict; "1 seed: ..." where there is no test), the caption, and
    the differences per group for the figure. Empty without the baseline's trials."""
    try:
        rows = paired_table(tables, baseline)
    except LtrayError as e:
        return {"cells": [], "caption": str(e), "diffs": []}
    rows.sort(key=lambda r: -(r[OVERALL]["mean"] if r[OVERALL]["n"] else -math.inf))
    cells, diffs = [], []
    for r in rows:
        vs = r.get("vs_baseline")
        cells.append({"row": r["row"], "seeds": r["seeds"], **{g: pct_ci(r[g]) for g in GROUPS},
                      **{f"vs {g}": "baseline" if vs is None else Diff.of(vs[g]).text() for g in GROUPS}})
        if vs is not None:
            diffs.append({"row": r["row"], "method": r["method"],
                          **{g: {"diff": vs[g]["diff"] * 100, "lo": vs[g]["lo"] * 100, "hi": vs[g]["hi"] * 100,
                                 "verdict": Diff.of(vs[g]).verdict} for g in GROUPS}})
    return {"cells": cells, "caption": paired_caption(rows, baseline), "diffs": diffs}


def paired_differences(view: dict, study: str, baseline: str = "ce", train_counts=None) -> go.Figure:
    """Each method's difference from the baseline (points) per shot group, with its 95% interval."""
    if not view["diffs"]:
        return empty("Paired differences", view["caption"] or f"no trials of {baseline} to compare with", study)
    labels = shot_labels(train_counts)
    fig = go.Figure()
    names = [d["row"] for d in view["diffs"]][::-1]  # best on top
    for g in GROUPS:
        ds = view["diffs"][::-1]
        x = [d[g]["diff"] for d in ds]
        if all(v != v for v in x):
            continue  # an empty group (no class has so few images)
        fig.add_scatter(x=x, y=names, mode="markers", name=labels[g], marker=dict(color=SHOT_COLORS[g], size=9),
                        error_x=dict(type="data", symmetric=False, array=[_nz(d[g]["hi"] - d[g]["diff"]) for d in ds],
                                     arrayminus=[_nz(d[g]["diff"] - d[g]["lo"]) for d in ds]),
                        customdata=[d[g]["verdict"] for d in ds],
                        hovertemplate="%{y}: %{x:+.2f} points (%{customdata})<extra>" + labels[g] + "</extra>")
    fig.add_vline(x=0, line_color="#999")
    fig.update_layout(xaxis_title=f"difference from {baseline} (points), 95% interval", scattermode="group",
                      legend=dict(orientation="h", y=-0.25))
    return titled(fig, study, f"Paired differences from {baseline} per shot group", max(260, 60 + 45 * len(names)))


def _nz(v: float) -> float:
    return 0.0 if v != v else v


# ---------------------------------------------------------------- protocol gap
def gap_info(tables: dict, baseline: str = "ce") -> dict:
    """Per compared row, the protocol gap (optimism, points) per group with 95% CI half-widths."""
    rows = [r for r in gap_table(tables, baseline) if r["bal_acc"]["optimism"]["n"] > 0]
    return {"rows": [r["row"] for r in rows],
            "optimism": {g: [r[g]["optimism"]["mean"] * 100 for r in rows] for g in GROUPS},
            "ci95": {g: [r[g]["optimism"]["ci95"] * 100 for r in rows] for g in GROUPS}}


def gap_bars(tables: dict, study: str = "", baseline: str = "ce", train_counts=None) -> go.Figure:
    info = gap_info(tables, baseline)
    if not info["rows"]:
        return empty("Protocol gap", "no per-epoch test results: run the study with train.track_test=true", study)
    labels = shot_labels(train_counts)
    fig = go.Figure()
    for g in GROUPS:
        fig.add_bar(name=labels[g], x=info["rows"], y=info["optimism"][g], marker_color=SHOT_COLORS[g],
                    error_y=dict(type="data", array=[_nz(v) for v in info["ci95"][g]]))
    fig.update_layout(barmode="group", yaxis_title="optimism (points)", legend_title="group")
    return titled(fig, study, "Protocol gap: test accuracy with the epoch (and tau) chosen on test, minus on validation")


# ---------------------------------------------------------------- shifted test sets
def shifts_info(tables: dict) -> dict:
    """``ltray.report.shift_table`` per (method, rule): accuracy on each shifted set (mean, 95% CI
    over seeds), and per (method, rule) the mean over the shifts with its CI over seeds. The
    rules drawn: no adjustment, PC with the true prior and with the EM-estimated one (`--table
    shifts` has every rule)."""
    rows = [r for r in shift_table(tables) if r["adjustment"] in RULES]  # the three priors that read apart
    lines: dict[tuple, dict] = {}
    for r in rows:
        line = lines.setdefault((r["method"], r["adjustment"]), {"method": r["method"], "rule": r["adjustment"],
                                                                  "mean": {}, "ci95": {}})
        line["mean"][r["shift"]], line["ci95"][r["shift"]] = r["mean"], r["ci95"]
    per_seed: dict[tuple, dict[str, list]] = {}
    owner = {r["trial_id"]: m for m, rs in best_configurations(tables["trials"]).items() for r in rs}
    for s in tables["shifts"].select(["trial_id", "adjustment", "accuracy"]).to_pylist():
        if s["trial_id"] in owner and s["adjustment"] in RULES:
            per_seed.setdefault((owner[s["trial_id"]], s["adjustment"]), {}).setdefault(s["trial_id"], []).append(
                s["accuracy"])
    summary = [{"method": m, "rule": a, **mean_ci([float(np.mean(v)) for v in per_seed[(m, a)].values()])}
               for (m, a) in sorted(per_seed)]
    return {"lines": [lines[k] for k in sorted(lines)], "summary": summary}


def shifts(info: dict, study: str) -> go.Figure:
    if not info["lines"]:
        return empty("Shifted test label distributions", "no shifted test results yet", study)
    fig = go.Figure()
    for line in info["lines"]:
        rule, dash = RULES.get(line["rule"], (line["rule"], "dashdot"))
        y = [line["mean"].get(n) for n in SHIFT_ORDER]
        fig.add_scatter(x=SHIFT_ORDER, y=[None if v is None else v * 100 for v in y], mode="lines+markers",
                        name=f"{line['method']}, {rule}", legendgroup=line["method"],
                        line=dict(color=method_color(line["method"]), dash=dash),
                        error_y=dict(type="data", array=[_nz(line["ci95"].get(n, 0.0)) * 100 for n in SHIFT_ORDER]),
                        hovertemplate="%{x}: %{y:.1f}%<extra>%{fullData.name}</extra>")
    fig.update_layout(xaxis_title="test label distribution (forward: imbalanced as in training; backward: reversed)",
                      yaxis_title="accuracy (%)", legend=dict(orientation="h", y=-0.35), margin=dict(b=160))
    return titled(fig, study, "Accuracy on shifted test label distributions (colour: method; line: prior rule)", 560)


def shift_summary_rows(info: dict) -> list[dict]:
    """The mean over the shifted sets per method and rule, best first."""
    rows = sorted(info["summary"], key=lambda r: -r["mean"])
    return [{"method": r["method"], "rule": RULES.get(r["rule"], (r["rule"],))[0], "mean over shifts": pct_ci(r),
             "seeds": r["n"]} for r in rows]


# ---------------------------------------------------------------- tuning budget
def budget_info(trials: pa.Table, search: dict | None = None) -> dict:
    """``ltray.report.budget_curves`` per method: budgets, test and validation means and 95% CI
    half-widths (%), and how they were estimated."""
    search = search or {}
    curves = budget_curves(trials, search.get("sampler", "tpe"), search.get("search_defaults_first", True))
    lines = []
    for c in curves:
        pts = c["points"]
        lines.append({"method": c["method"], "n": [p["n"] for p in pts], "note": c["note"],
                      **{f"{k}{part}": [p[k][stat] * 100 for p in pts]
                         for k in ("test", "val") for part, stat in (("", "mean"), ("_ci95", "ci95"))}})
    return {"lines": lines, "estimate": curves[0]["estimate"] if curves else ""}


def budget(trials: pa.Table, search: dict | None = None, study: str = "") -> go.Figure:
    info = budget_info(trials, search)
    drawn = [line for line in info["lines"] if line["n"]]
    if not drawn:
        return empty("Tuning budget", "no configuration order recorded (a study from before ltray 0.3)"
                     if info["lines"] else "no trial yet", study)
    fig = go.Figure()
    for line in drawn:
        color = method_color(line["method"])
        fig.add_scatter(x=line["n"], y=line["test"], name=f"{line['method']} (test)", mode="lines+markers",
                        line=dict(color=color), legendgroup=line["method"],
                        error_y=dict(type="data", array=[_nz(v) for v in line["test_ci95"]]))
        fig.add_scatter(x=line["n"], y=line["val"], name=f"{line['method']} (validation)", mode="lines",
                        line=dict(color=color, dash="dot"), legendgroup=line["method"])
    fig.update_layout(xaxis_title="configurations searched (1: published defaults)", yaxis_title="balanced accuracy (%)",
                      xaxis=dict(dtick=1))
    return titled(fig, study, f"Tuning budget: the validation-selected configuration after n configurations "
                              f"({info['estimate']}; mean ± 95% CI over seeds)")


# ---------------------------------------------------------------- studies side by side
def studies_rows(summaries: dict[str, pa.Table]) -> tuple[list[dict], list[str]]:
    """Per method, each study's selected configuration (``method_summary``): test balanced
    accuracy (%, mean ± CI, seeds) side by side; the columns are the studies, in the given order."""
    by_method: dict[str, dict] = {}
    for study, trials in summaries.items():
        for m in method_summary(trials):
            by_method.setdefault(m["method"], {"method": m["method"]})[study] = (
                f"{pct_ci(m['test_bal_acc'])} (n={m['n']}; val {pct_ci(m['val_bal_acc'])})")
    return [by_method[m] for m in sorted(by_method)], list(summaries)


# ---------------------------------------------------------------- multi-expert methods
EXPERT_COLUMNS = ("method", "expert", *GROUPS, "shifts")


def expert_rows(tables: dict) -> list[dict]:
    """Each expert of a multi-expert method, and their mean (the prediction): test accuracy per
    group (%, mean ± CI over seeds), the numbers of ``ltray.report --table experts``."""
    if tables.get("expert_logits") is None or not tables["expert_logits"].num_rows:
        return []
    return [{"method": r["method"], "expert": r["expert"], **{g: pct_ci(r[g]) for g in (*GROUPS, "shifts")}}
            for r in expert_table(tables)]
