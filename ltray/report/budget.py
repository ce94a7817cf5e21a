"""Budget curves: how good each method's validation-selected configuration is after the search
has spent n of its configurations on it (n = 1: its published defaults, when they run first).

Two estimators, by how the study searched:
- best so far (TPE, NSGA-II: each proposal depends on the ones before): the configurations in
  the order the search asked for them; after n, the one with the best mean validation
  objective over its seeds (``select.pick_best``, the selection every view uses: at the last
  budget this is the method's row of the summary).
- expected best of n (random search, whose order is arbitrary): over every order, the exact
  expectation from the order statistics of the configurations it sampled (Dodge et al., EMNLP
  2019; ``core.stats.best_of_draws``), the published defaults always the first. Its last budget
  is an expectation of draws with replacement, a little below the best of them all.

Each budget's validation and test accuracy are the mean +- 95% CI over the seeds of what it
selects (for the expectation: per seed, the expectation of that seed's accuracy). Only
configurations whose trials completed can be selected; every configuration the search asked for
counts against the budget (a failed one, one ASHA stopped; a re-pick of one asked for before does not).
"""

from __future__ import annotations

import json

import numpy as np

from ltray import results as R
from ltray.core.stats import best_of_draws, mean_ci
from ltray.results.schema import TrialStatus
from ltray.report.select import asked_order, configurations, pick_best, study_objective


def budget_curves(trials, sampler: str = "tpe", defaults_first: bool = True, objective: str | None = None) -> list[dict]:
    """Per method (name order): ``method``, ``configurations`` (asked for), ``estimate`` ("best
    so far" or "expected best"), ``note`` (why it has no curve, else "") and ``points``: per
    budget n = 1 .. configurations, ``n``, ``val`` and ``test`` (``mean_ci`` over seeds),
    ``params`` (best so far: the selected configuration's) and ``trial_ids`` (the trials used)."""
    completed = configurations(trials)
    objective = study_objective(completed, objective)
    asked = _asked(trials)
    out = []
    for method in sorted(asked):
        keys = asked[method]
        entry = {"method": method, "configurations": len(keys), "estimate": "best so far", "note": "", "points": []}
        if any(order == float("inf") for order, _ in keys):
            entry["note"] = "no configuration order recorded (a study from before ltray 0.3)"
        elif sampler == "random":
            entry.update(estimate="expected best", points=_expected(method, keys, completed, objective, defaults_first))
        else:
            entry["points"] = _best_so_far(method, keys, completed, objective)
        out.append(entry)
    return out


def _asked(trials) -> dict[str, list[tuple[float, str]]]:
    """Per method, its distinct configurations (params as JSON) in the order they were asked for."""
    groups: dict[tuple, list[dict]] = {}
    for r in trials.to_pylist():
        if r["status"] != TrialStatus.DUPLICATE:
            groups.setdefault((r["method"], json.dumps(sorted(dict(r["params"] or []).items()))), []).append(r)
    out: dict[str, list[tuple[float, str]]] = {}
    for (method, key), rows in groups.items():
        out.setdefault(method, []).append((asked_order(rows), key))
    return {m: sorted(v) for m, v in out.items()}


def _point(n: int, rows: list[dict], objective: str) -> dict:
    return {"n": n, "val": mean_ci([r[objective] for r in rows]), "test": mean_ci([r["test_bal_acc"] for r in rows]),
            "params": dict(rows[0]["params"] or []), "trial_ids": [r["trial_id"] for r in rows]}


def _best_so_far(method: str, keys: list[tuple[float, str]], completed: dict, objective: str) -> list[dict]:
    points = []
    for n in range(1, len(keys) + 1):
        allowed = {(method, k): completed[(method, k)] for _, k in keys[:n] if (method, k) in completed}
        chosen = pick_best(allowed, objective).get(method)
        points.append(_point(n, chosen, objective) if chosen else {"n": n, "val": mean_ci([]), "test": mean_ci([]),
                                                                   "params": {}, "trial_ids": []})
    return points


def _expected(method: str, keys: list[tuple[float, str]], completed: dict, objective: str,
              defaults_first: bool) -> list[dict]:
    """Budget n: the published defaults (when first) and n - 1 random draws from the rest,
    which wins by the same rule as ``pick_best`` (higher mean objective; ties: asked first)."""
    first = keys[0][1] if defaults_first else None
    pool = [(o, k) for o, k in keys if k != first and (method, k) in completed]
    seeds = sorted({r["seed"] for rows in completed.values() for r in rows})

    def per_seed(k: str, col: str) -> np.ndarray:
        rows = completed[(method, k)]
        have = {r["seed"]: r[col] for r in rows}
        mean = float(np.nanmean([r[col] for r in rows]))
        return np.array([have.get(s, mean) for s in seeds], dtype=np.float64)  # a seed it lacks: its mean

    score = {k: round(float(np.mean([r[objective] for r in completed[(method, k)]])), 12)  # as pick_best
             for _, k in keys if (method, k) in completed}
    rank = {k: (score[k], -o) for o, k in keys if k in score}
    points = []
    for n in range(1, len(keys) + 1):
        draws = n - 1 if first is not None else n
        w = best_of_draws([rank[k] for _, k in pool], draws) if pool and draws else np.zeros(len(pool))
        weights = {k: p for (_, k), p in zip(pool, w)}
        if first in score:  # the defaults win unless a draw beats them
            beaten = sum(p for k, p in weights.items() if rank[k] > rank[first])
            weights = {k: (p if rank[k] > rank[first] else 0.0) for k, p in weights.items()}
            weights[first] = 1.0 - beaten
        total = sum(weights.values())
        if total <= 0:
            points.append({"n": n, "val": mean_ci([]), "test": mean_ci([]), "params": {}, "trial_ids": []})
            continue
        val = sum(p * per_seed(k, objective) for k, p in weights.items()) / total
        test = sum(p * per_seed(k, "test_bal_acc") for k, p in weights.items()) / total
        used = [r["trial_id"] for k, p in weights.items() if p > 0 for r in completed[(method, k)]]
        points.append({"n": n, "val": mean_ci(val), "test": mean_ci(test), "params": {}, "trial_ids": used})
    return points


def search_settings(study: str) -> dict:
    """The study's search settings as its experiment.json records them ({} when it has none):
    which estimator its budget curves take (``sampler``, ``search_defaults_first``)."""
    try:
        return json.loads(R.study_file(study, "experiment.json") or "{}").get("search") or {}
    except ValueError:
        return {}
