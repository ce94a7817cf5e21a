"""Figures of a study's overview, as pure functions: tables in, plotly figures out: the trials
table's rows, the selected configurations, per-shot accuracy, per-class accuracy, the exact
post-hoc tau curve and DiVE's virtual examples (the comparisons are in ``compare``, one trial's
curves and card in ``trial_view``, the shared vocabulary in ``style``).

Like Optuna's visualization module, each figure is split into ``*_info`` (what to draw: plain
lists and dicts, tested directly) and a thin function that draws it.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

from dashboard.style import SHOT_COLORS, empty, method_color, shot_labels, titled
from dashboard.trial_view import trial_label
from ltray.core.metrics import OVERALL, SHOT_GROUPS
from ltray.report import method_summary

SHOTS = (OVERALL, *SHOT_GROUPS)  # the per-shot bars: overall, then each shot group


def _rows(table: pa.Table, trial_ids, **equal) -> list[dict]:
    """Rows of the given trials (and column == value filters), filtered in Arrow before any
    Python objects are made: a study's tables reach millions of rows."""
    mask = pc.is_in(table["trial_id"], value_set=pa.array(list(trial_ids), pa.string()))
    for col, value in equal.items():
        mask = pc.and_(mask, pc.equal(table[col], value))
    return table.filter(mask).to_pylist()


# ---------------------------------------------------------------- trials overview
TRIAL_COLUMNS = ("trial_id", "method", "params", "seed", "status", "val_bal_acc", "test_bal_acc",
                 "test_bal_acc_posthoc", "test_many", "test_medium", "test_few", "test_ece", "test_ece_ts",
                 "best_epoch", "wall_s")
PERCENT_COLUMNS = ("val_bal_acc", "test_bal_acc", "test_bal_acc_posthoc", "test_many", "test_medium", "test_few",
                   "test_ece", "test_ece_ts")
"""Fractions the page shows as percent (the table's own format, so sorting stays numeric)."""


def trials_rows(trials: pa.Table) -> list[dict]:
    """Rows for the trials table: fractions as they are (the page shows them in %), params as
    text, NaN as None, seconds whole."""
    out = []
    for r in trials.to_pylist():
        row = {}
        for c in TRIAL_COLUMNS:
            v = r.get(c)
            if c == "params":
                v = ", ".join(f"{k}={x:.4g}" for k, x in (v or []))
            elif isinstance(v, float):
                v = None if math.isnan(v) else (round(v) if c == "wall_s" else round(v, 6))
            row[c] = v
        row["id"] = r["trial_id"]  # the row's id: a click on it names the trial
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


def shot_bars(trials: pa.Table, study: str = "", train_counts=None) -> go.Figure:
    info = shot_bars_info(trials)
    if not info["methods"]:
        return empty("Per-shot accuracy", "no completed trial yet", study)
    labels = shot_labels(train_counts)
    order = sorted(range(len(info["methods"])), key=lambda i: -info["mean"][OVERALL][i])  # best overall first
    fig = go.Figure()
    for s in SHOTS:
        e = info["ci95"][s]
        fig.add_bar(name=labels[s], x=[info["methods"][i] for i in order], marker_color=SHOT_COLORS[s],
                    y=[info["mean"][s][i] * 100 for i in order],
                    error_y=dict(type="data", array=[(e[i] or 0) * 100 for i in order], visible=info["repeats"]),
                    hovertemplate="%{x}: %{y:.1f}%<extra>" + labels[s] + "</extra>")
    fig.update_layout(barmode="group", yaxis_title="test accuracy (%)", legend_title="group")
    return titled(fig, study, "Test accuracy per shot group of each method's selected configuration"
                  + (" (mean ± 95% CI over seeds)" if info["repeats"] else ""))


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


def per_class(per_class_table: pa.Table, trials: pa.Table, trial_ids: list[str], split: str = "test",
              study: str = "") -> go.Figure:
    info = per_class_info(per_class_table, trials, trial_ids, split)
    if not info:
        return empty("Per-class accuracy", "pick trials above", study)
    labels = {r["trial_id"]: trial_label(r) for r in trials.select(["trial_id", "method", "params", "seed"]).to_pylist()}
    fig = go.Figure()
    for t in info:
        label, color, text = labels.get(t["trial_id"], t["trial_id"]), method_color(t["method"]), \
            [f"class {c}" for c in t["class_id"]]
        for key, symbol, what in (("accuracy", "circle", "recall"), ("accuracy_posthoc", "x", "recall, post-hoc tau*"),
                                  ("precision", "triangle-up", "precision")):
            fig.add_scatter(x=t["train_count"], y=[None if v != v else v * 100 for v in t[key]], mode="markers",
                            marker=dict(symbol=symbol, color=color), name=f"{label}: {what}", text=text,
                            legendgroup=t["trial_id"], hovertemplate="%{text}: %{y:.1f}%<extra>%{fullData.name}</extra>")
    fig.update_layout(xaxis_type="log", xaxis_title="training images of the class (log)", yaxis_title="%",
                      legend=dict(orientation="h", y=-0.25))
    return titled(fig, study, f"Per-class {split} recall and precision against training count", 500)


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


def tau_curve(curves: pa.Table, trials: pa.Table, trial_id: str | None, study: str = "") -> go.Figure:
    if not trial_id:
        return empty("Post-hoc tau curve", "pick a trial", study)
    info = tau_curve_info(curves, trials, trial_id)
    if not info["splits"]:
        return empty("Post-hoc tau curve", f"trial {trial_id} has no curve", study)
    fig = go.Figure()
    for split, d in info["splits"].items():
        fig.add_scatter(x=d["x"], y=[v * 100 for v in d["y"]], mode="lines", line_shape="hv",
                        name="validation" if split == "val" else "test")
    star = info["tau_star"]
    if star is not None and not math.isnan(star):
        note = " (balanced logits: no training prior to divide out, the curve is flat by design)" if star == 0 else ""
        fig.add_vline(x=star, line_dash="dash", annotation_text=f"tau* = {star:.3f} (validation){note}")
    fig.update_layout(xaxis_title="tau", yaxis_title="balanced accuracy (%)")
    label = next((trial_label(r) for r in trials.to_pylist() if r["trial_id"] == trial_id), trial_id)
    return titled(fig, study, f"Post-hoc logit adjustment of {label} (exact steps)")


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


def virtual(virtual_table: pa.Table, trial_id: str | None, study: str = "") -> go.Figure:
    info = virtual_info(virtual_table, trial_id) if trial_id else {}
    if not info:
        return empty("DiVE virtual examples", "no DiVE trial in this study" if not trial_id else "no distribution stored",
                     study)
    x = [str(c) for c in info["class_id"]]
    fig = go.Figure()
    for key, name in (("labels", "label distribution"), ("raw", "teacher, raw"), ("tempered", "teacher, tempered"),
                      ("power_normalised", "teacher, tempered + power-normalised")):
        fig.add_scatter(x=x, y=[v * 100 for v in info[key]], mode="lines+markers", name=name)
    fig.update_layout(xaxis_title="class (head to tail)", yaxis_title="share of examples (%, log)", yaxis_type="log")
    return titled(fig, study, f"Virtual example distribution of the DiVE teacher, trial {trial_id}")
