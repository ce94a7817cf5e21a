"""Figures of a study, as pure functions: tables in, plotly figures out.

Like Optuna's visualization module, each figure is split into ``*_info`` (what to draw: plain
lists and dicts, tested directly) and a thin function that draws it.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

from ltray.core.longtail import shift_names
from ltray.core.metrics import FEW_SHOT, MANY_SHOT, OVERALL, SHOT_GROUPS
from ltray.errors import LtrayError
from ltray.report import (GROUPS, best_configurations, budget_curves, gap_table, method_summary, paired_caption,
                          paired_table)
from ltray.report.render import Diff

SHOTS = (*SHOT_GROUPS, OVERALL)  # the per-shot bars: each shot group, then overall
SHOT_LABELS = {"many": f"many (>{MANY_SHOT})", "medium": "medium", "few": f"few (<{FEW_SHOT})", OVERALL: "overall"}
SHIFT_ORDER = [n for n, _, _ in shift_names()]
SHIFT_LINES = {"none": "no adjustment", "pc_true": "PC, true prior", "pc_em": "PC, EM-estimated prior"}


def _rows(table: pa.Table, trial_ids, **equal) -> list[dict]:
    """Rows of the given trials (and column == value filters), filtered in Arrow before any
    Python objects are made: a study's tables reach millions of rows."""
    mask = pc.is_in(table["trial_id"], value_set=pa.array(list(trial_ids), pa.string()))
    for col, value in equal.items():
        mask = pc.and_(mask, pc.equal(table[col], value))
    return table.filter(mask).to_pylist()


def empty(title: str, note: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, annotations=[dict(text=note, showarrow=False, x=0.5, y=0.5, xref="paper",
                                                     yref="paper")], xaxis_visible=False, yaxis_visible=False)
    return fig


# ---------------------------------------------------------------- trials overview
TRIAL_COLUMNS = ("trial_id", "method", "status", "params", "seed", "val_bal_acc", "test_bal_acc",
                 "test_bal_acc_posthoc", "test_many", "test_medium", "test_few", "test_ece", "test_ece_ts",
                 "best_epoch", "wall_s")


def trials_rows(trials: pa.Table) -> list[dict]:
    """Rows for the trials table: numbers rounded, params as text, NaN as None."""
    out = []
    for r in trials.to_pylist():
        row = {}
        for c in TRIAL_COLUMNS:
            v = r.get(c)
            if c == "params":
                v = ", ".join(f"{k}={x:.4g}" for k, x in (v or []))
            elif isinstance(v, float):
                v = None if math.isnan(v) else round(v, 4)
            row[c] = v
        out.append(row)
    return out


def best_per_method_info(trials: pa.Table) -> list[dict]:
    """The best configuration per method (on validation) with its seeds' mean validation and test
    balanced accuracy: ``ltray.report.method_summary``, as the CLI and the report show it."""
    return [{"method": m["method"], "n": m["n"], "params": m["params"], "val_bal_acc": m["val_bal_acc"]["mean"],
             "test_bal_acc": m["test_bal_acc"]["mean"]} for m in method_summary(trials)]


# ---------------------------------------------------------------- per-shot bars
def shot_bars_info(trials: pa.Table) -> dict:
    """Per method (best configuration on validation): mean test many/medium/few/overall accuracy,
    with 95% CI half-widths when the configuration has several seeds."""
    methods, mean, err = [], {s: [] for s in SHOTS}, {s: [] for s in SHOTS}
    repeats = False
    for m in method_summary(trials):
        methods.append(m["method"])
        repeats |= m["n"] > 1
        for s in SHOTS:
            st = m[f"test_{s}"]
            mean[s].append(st["mean"])
            err[s].append(st["ci95"] if st["n"] > 1 else None)
    return {"methods": methods, "mean": mean, "ci95": err, "repeats": repeats}


def shot_bars(trials: pa.Table) -> go.Figure:
    info = shot_bars_info(trials)
    if not info["methods"]:
        return empty("Per-shot accuracy", "no completed trial yet")
    fig = go.Figure()
    for s in SHOTS:
        e = info["ci95"][s]
        fig.add_bar(name=SHOT_LABELS[s], x=info["methods"], y=[v * 100 for v in info["mean"][s]],
                    error_y=dict(type="data", array=[(x or 0) * 100 for x in e], visible=info["repeats"]))
    fig.update_layout(barmode="group", title="Test accuracy per shot group (best configuration per method"
                      + (", mean +- 95% CI over seeds)" if info["repeats"] else ")"),
                      yaxis_title="accuracy (%)", legend_title="group")
    return fig


# ---------------------------------------------------------------- per-class accuracy
def per_class_info(per_class: pa.Table, trials: pa.Table, trial_ids: list[str], split: str = "test") -> list[dict]:
    """One entry per chosen trial: train counts and accuracy, raw and post-hoc adjusted."""
    names = {r["trial_id"]: r["method"] for r in trials.to_pylist()}
    rows = _rows(per_class, trial_ids, split=split)
    out = []
    for tid in trial_ids:
        mine = sorted((r for r in rows if r["trial_id"] == tid), key=lambda r: r["class_id"])
        if mine:
            out.append({"trial_id": tid, "method": names.get(tid, "?"), "class_id": [r["class_id"] for r in mine],
                        "train_count": [r["train_count"] for r in mine], "accuracy": [r["accuracy"] for r in mine],
                        "accuracy_posthoc": [r["accuracy_posthoc"] for r in mine],
                        "precision": [r["precision"] for r in mine]})
    return out


def per_class(per_class_table: pa.Table, trials: pa.Table, trial_ids: list[str], split: str = "test") -> go.Figure:
    info = per_class_info(per_class_table, trials, trial_ids, split)
    if not info:
        return empty("Per-class accuracy", "choose trials above")
    fig = go.Figure()
    for t in info:
        label = f"{t['method']} [{t['trial_id']}]"
        fig.add_scatter(x=t["train_count"], y=[a * 100 for a in t["accuracy"]], mode="markers", name=label + " raw",
                        text=[f"class {c}" for c in t["class_id"]])
        fig.add_scatter(x=t["train_count"], y=[a * 100 for a in t["accuracy_posthoc"]], mode="markers",
                        marker_symbol="x", name=label + " post-hoc tau*", text=[f"class {c}" for c in t["class_id"]])
        fig.add_scatter(x=t["train_count"], y=[None if p != p else p * 100 for p in t["precision"]], mode="markers",
                        marker_symbol="triangle-up", name=label + " precision", text=[f"class {c}" for c in t["class_id"]])
    fig.update_layout(title=f"Per-class {split} accuracy (recall) and precision against training count",
                      xaxis_type="log", xaxis_title="training images of the class (log)", yaxis_title="%")
    return fig


# ---------------------------------------------------------------- shifted test sets
def shifts_info(shifts: pa.Table, trials: pa.Table, adjustments=("none", "pc_true", "pc_em")) -> list[dict]:
    """Per method (best configuration) and adjustment: mean accuracy over the 11 shifted sets."""
    best = best_configurations(trials)
    owner = {r["trial_id"]: m for m, rows in best.items() for r in rows}
    acc: dict[tuple, list] = {}
    for s in _rows(shifts, owner):
        m = owner.get(s["trial_id"])
        if m is not None and s["adjustment"] in adjustments:
            acc.setdefault((m, s["adjustment"], s["shift"]), []).append(s["accuracy"])
    out = []
    for m in best:
        for a in adjustments:
            ys = [float(np.mean(acc[(m, a, n)])) if (m, a, n) in acc else None for n in SHIFT_ORDER]
            if any(y is not None for y in ys):
                out.append({"method": m, "adjustment": a, "x": SHIFT_ORDER, "y": ys})
    return out


def shifts(shifts_table: pa.Table, trials: pa.Table) -> go.Figure:
    info = shifts_info(shifts_table, trials)
    if not info:
        return empty("Shifted test label distributions", "no completed trial yet")
    fig = go.Figure()
    dash = {"none": "solid", "pc_true": "dash", "pc_em": "dot"}
    for t in info:
        fig.add_scatter(x=t["x"], y=[None if y is None else y * 100 for y in t["y"]], mode="lines+markers",
                        name=f"{t['method']}: {SHIFT_LINES[t['adjustment']]}", line_dash=dash[t["adjustment"]])
    fig.update_layout(title="Accuracy on shifted test label distributions (LADE protocol)",
                      xaxis_title="test label distribution", yaxis_title="accuracy (%)")
    return fig


# ---------------------------------------------------------------- tau curve
def tau_curve_info(curves: pa.Table, trials: pa.Table, trial_id: str) -> dict:
    """Step lines of balanced accuracy against tau for validation and test, and tau*."""
    rows = _rows(curves, [trial_id])
    out = {"trial_id": trial_id, "splits": {}, "tau_star": None}
    for split in ("val", "test"):
        mine = sorted((r for r in rows if r["split"] == split), key=lambda r: r["tau_lo"])
        if mine:
            xs = [r["tau_lo"] for r in mine] + [mine[-1]["tau_hi"]]
            ys = [r["bal_acc"] for r in mine] + [mine[-1]["bal_acc"]]
            out["splits"][split] = {"x": xs, "y": ys}
    star = [r["tau_star"] for r in trials.to_pylist() if r["trial_id"] == trial_id]
    out["tau_star"] = star[0] if star else None
    return out


def tau_curve(curves: pa.Table, trials: pa.Table, trial_id: str | None) -> go.Figure:
    if not trial_id:
        return empty("Post-hoc tau curve", "choose a trial")
    info = tau_curve_info(curves, trials, trial_id)
    if not info["splits"]:
        return empty("Post-hoc tau curve", f"trial {trial_id} has no curve")
    fig = go.Figure()
    for split, d in info["splits"].items():
        fig.add_scatter(x=d["x"], y=[v * 100 for v in d["y"]], mode="lines", line_shape="hv",
                        name="validation" if split == "val" else "test")
    if info["tau_star"] is not None and not math.isnan(info["tau_star"]):
        fig.add_vline(x=info["tau_star"], line_dash="dash", annotation_text=f"tau* = {info['tau_star']:.3f} (validation)")
    fig.update_layout(title=f"Balanced accuracy of post-hoc logit adjustment, trial {trial_id} (exact steps)",
                      xaxis_title="tau", yaxis_title="balanced accuracy (%)")
    return fig


# ---------------------------------------------------------------- DiVE virtual examples
def virtual_info(virtual: pa.Table, trial_id: str) -> dict:
    """Normalised label distribution and the teacher's raw / tempered / power-normalised virtual
    example distributions of one DiVE trial, classes ordered by training count."""
    rows = sorted(_rows(virtual, [trial_id]), key=lambda r: -r["train_count"])
    if not rows:
        return {}
    out = {"class_id": [r["class_id"] for r in rows]}
    for key, col in (("labels", "train_count"), ("raw", "raw"), ("tempered", "tempered"),
                     ("power_normalised", "power_normalised")):
        v = np.array([r[col] for r in rows], dtype=np.float64)
        out[key] = (v / v.sum()).tolist()
    return out


def virtual(virtual_table: pa.Table, trial_id: str | None) -> go.Figure:
    info = virtual_info(virtual_table, trial_id) if trial_id else {}
    if not info:
        return empty("DiVE virtual example distribution", "no DiVE trial chosen")
    x = [str(c) for c in info["class_id"]]
    fig = go.Figure()
    for key, name in (("labels", "label distribution"), ("raw", "teacher, raw"), ("tempered", "teacher, tempered"),
                      ("power_normalised", "teacher, tempered + power-normalised")):
        fig.add_scatter(x=x, y=info[key], mode="lines+markers", name=name)
    fig.update_layout(title=f"Virtual example distribution of the DiVE teacher, trial {trial_id}",
                      xaxis_title="class (head to tail)", yaxis_title="share of examples", yaxis_type="log")
    return fig


# ---------------------------------------------------------------- paired comparison, protocol gap
PAIRED_COLUMNS = ("row", "seeds", "bal_acc", "many", "medium", "few", "vs_baseline", "p", "verdict")


def _pm(s: dict) -> str:
    if s["n"] == 0:
        return ""
    return f"{s['mean'] * 100:.2f}" + (f" ± {s['ci95'] * 100:.2f}" if s["n"] > 1 else "")


def paired_rows(tables: dict, baseline: str = "ce") -> list[dict]:
    """``ltray.report.paired_table`` as table rows (%, mean ± 95% CI; the overall difference from
    the baseline with its interval, the Holm-adjusted p and the verdict, as ``ltray.report``
    prints them); [] without the baseline's trials."""
    return paired_view(tables, baseline)[0]


def paired_view(tables: dict, baseline: str = "ce") -> tuple[list[dict], str]:
    """:func:`paired_rows` and the caption ``ltray.report`` prints above them (what the
    interval and p are, over how many seeds and comparisons)."""
    try:
        rows = paired_table(tables, baseline)
    except LtrayError:
        return [], ""
    return _paired_cells(rows), paired_caption(rows, baseline)


def _paired_cells(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        d = r.get("vs_baseline", {}).get("bal_acc")
        diff = Diff.of(d) if d is not None else None
        out.append({"row": r["row"], "seeds": r["seeds"], **{g: _pm(r[g]) for g in GROUPS},
                    "vs_baseline": "" if diff is None else (f"{diff.diff:+.2f}" if diff.p != diff.p else
                                                            f"{diff.diff:+.2f} [{diff.lo:+.2f}, {diff.hi:+.2f}]"),
                    "p": "" if diff is None else diff.p_text, "verdict": "baseline" if diff is None else diff.verdict})
    return out


def gap_info(tables: dict, baseline: str = "ce") -> dict:
    """Per compared row, the protocol gap (optimism, points) per group with 95% CI half-widths."""
    rows = [r for r in gap_table(tables, baseline) if r["bal_acc"]["optimism"]["n"] > 0]
    return {"rows": [r["row"] for r in rows],
            "optimism": {g: [r[g]["optimism"]["mean"] * 100 for r in rows] for g in GROUPS},
            "ci95": {g: [r[g]["optimism"]["ci95"] * 100 for r in rows] for g in GROUPS}}


def gap_bars(tables: dict, baseline: str = "ce") -> go.Figure:
    info = gap_info(tables, baseline)
    if not info["rows"]:
        return empty("Protocol gap", "no per-epoch test results: run the study with train.track_test=true")
    fig = go.Figure()
    for g in GROUPS:
        fig.add_bar(name=SHOT_LABELS.get(g, g), x=info["rows"], y=info["optimism"][g],
                    error_y=dict(type="data", array=[0 if v != v else v for v in info["ci95"][g]]))
    fig.update_layout(barmode="group", yaxis_title="optimism (points)", legend_title="group",
                      title="Protocol gap: test accuracy with epoch (and tau) chosen on test, minus chosen on "
                            "validation")
    return fig


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


def budget(trials: pa.Table, search: dict | None = None) -> go.Figure:
    info = budget_info(trials, search)
    drawn = [line for line in info["lines"] if line["n"]]
    if not drawn:
        return empty("Tuning budget", "no configuration order recorded (a study from before ltray 0.3)"
                     if info["lines"] else "no trial yet")
    fig = go.Figure()
    for i, line in enumerate(drawn):
        color = _COLORS[i % len(_COLORS)]
        fig.add_scatter(x=line["n"], y=line["test"], name=f"{line['method']} (test)", mode="lines+markers",
                        line=dict(color=color), legendgroup=line["method"],
                        error_y=dict(type="data", array=[0 if v != v else v for v in line["test_ci95"]]))
        fig.add_scatter(x=line["n"], y=line["val"], name=f"{line['method']} (validation)", mode="lines",
                        line=dict(color=color, dash="dot"), legendgroup=line["method"])
    fig.update_layout(title=f"Tuning budget: the validation-selected configuration after n configurations "
                            f"({info['estimate']}; mean ± 95% CI over seeds)",
                      xaxis_title="configurations searched (1: published defaults)",
                      yaxis_title="balanced accuracy (%)", xaxis=dict(dtick=1))
    return fig


_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
