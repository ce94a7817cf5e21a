"""Tables from a stored study: per method (and configuration), mean +- 95% CI over seeds.

    python -m ltray.report results/la_table --table la       # the LA paper's Table 3 rows
    python -m ltray.report results/quickstart                # best configuration per method
    python -m ltray.report results/lade_shift --table shifts # the LADE shifted-test table
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from ltray import results as R
from ltray.errors import LtrayError


def mean_ci(values) -> dict:
    """Mean, sample std and the half-width of a two-sided 95% t-interval."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "ci95": float("nan")}
    std = float(v.std(ddof=1)) if v.size > 1 else float("nan")
    return {"n": int(v.size), "mean": float(v.mean()), "std": std,
            "ci95": R._t975(v.size - 1) * std / math.sqrt(v.size) if v.size > 1 else float("nan")}


def configurations(trials) -> dict[tuple, list[dict]]:
    """Completed trials grouped by (method, hyperparameters): the seeds of one configuration."""
    groups: dict[tuple, list[dict]] = {}
    for r in trials.to_pylist():
        if r["status"] != "completed":
            continue
        key = (r["method"], json.dumps(sorted(dict(r["params"] or []).items())))
        groups.setdefault(key, []).append(r)
    return groups


def best_configurations(trials, objective: str = "val_bal_acc") -> dict[str, list[dict]]:
    """Per method, the seeds of its configuration with the best mean validation objective."""
    best: dict[str, tuple[float, list[dict]]] = {}
    for (method, _), rows in configurations(trials).items():
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


def la_table(trials) -> list[dict]:
    """Balanced error (%) per row, mean +- 95% CI over seeds; a row without its method is absent."""
    best = best_configurations(trials)
    out = []
    for label, method, col in LA_ROWS:
        if method in best:
            s = mean_ci([1.0 - r[col] if r[col] is not None else None for r in best[method]])
            out.append({"row": label, **s})
    return out


def method_table(trials) -> list[dict]:
    out = []
    for method, rows in best_configurations(trials).items():
        out.append({"method": method, "params": dict(rows[0]["params"] or []),
                    **{k: mean_ci([r[k] for r in rows]) for k in
                       ("val_bal_acc", "test_bal_acc", "test_bal_acc_posthoc", "test_many", "test_medium", "test_few")}})
    return out


def shift_table(tables) -> list[dict]:
    """Mean accuracy per (method, adjustment, shifted set) over the best configuration's seeds."""
    best = best_configurations(tables["trials"])
    ids = {r["trial_id"]: m for m, rows in best.items() for r in rows}
    acc: dict[tuple, list[float]] = {}
    for s in tables["shifts"].to_pylist():
        if s["trial_id"] in ids:
            acc.setdefault((ids[s["trial_id"]], s["adjustment"], s["shift"]), []).append(s["accuracy"])
    return [{"method": m, "adjustment": a, "shift": sh, **mean_ci(v)} for (m, a, sh), v in sorted(acc.items())]


def _fmt(s: dict, scale: float = 100.0) -> str:
    if s["n"] == 0:
        return "-"
    ci = f" +- {s['ci95'] * scale:.2f}" if s["n"] > 1 else ""
    return f"{s['mean'] * scale:.2f}{ci} (n={s['n']})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltray.report", description=__doc__.split("\n\n")[0])
    p.add_argument("study", help="a study folder, e.g. results/quickstart")
    p.add_argument("--table", choices=("methods", "la", "shifts"), default="methods")
    a = p.parse_args(argv)
    try:
        tables = R.load_study(a.study, ("trials", "shifts"))
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.table == "la":
        print(f"{'balanced error (%)':<42} mean +- 95% CI")
        for r in la_table(tables["trials"]):
            print(f"{r['row']:<42} {_fmt(r)}")
    elif a.table == "methods":
        print(f"{'method':<18} {'val bal-acc':>22} {'test bal-acc':>22} {'test + post-hoc':>22} {'few':>22}")
        for r in method_table(tables["trials"]):
            print(f"{r['method']:<18} {_fmt(r['val_bal_acc']):>22} {_fmt(r['test_bal_acc']):>22} "
                  f"{_fmt(r['test_bal_acc_posthoc']):>22} {_fmt(r['test_few']):>22}")
    else:
        from ltray.core.longtail import shift_names

        rows = shift_table(tables)
        names = [n for n, _, _ in shift_names()]
        print(f"{'method':<18}{'adjustment':<13}" + "".join(f"{n[:4] + n[-2:]:>8}" for n in names))
        for m, a_ in sorted({(r["method"], r["adjustment"]) for r in rows}):
            vals = {r["shift"]: r["mean"] for r in rows if r["method"] == m and r["adjustment"] == a_}
            print(f"{m:<18}{a_:<13}" + "".join(f"{vals.get(n, float('nan')) * 100:8.2f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
