"""The one selection every view shows: per method, the configuration with the best mean
validation objective over its seeds (``best_configurations``), and what is shown of it
(``method_summary``: mean +- 95% CI over those seeds of each summary column). The sweep's CLI
summary, ``ltray.report`` and the dashboard all render ``method_summary``."""

from __future__ import annotations

import json

import numpy as np

from ltray.core.stats import mean_ci
from ltray.results.schema import TrialStatus

SUMMARY_COLUMNS = ("val_bal_acc", "test_bal_acc", "test_bal_acc_posthoc", "test_many", "test_medium", "test_few")
"""What a method's summary holds, per column: mean +- 95% CI over its selected configuration's seeds."""


def configurations(trials) -> dict[tuple, list[dict]]:
    """Completed trials grouped by (method, hyperparameters): the seeds of one configuration."""
    groups: dict[tuple, list[dict]] = {}
    for r in trials.to_pylist():
        if r["status"] != TrialStatus.COMPLETED:
            continue
        key = (r["method"], json.dumps(sorted(dict(r["params"] or []).items())))
        groups.setdefault(key, []).append(r)
    return groups


def study_objective(groups: dict[tuple, list[dict]], objective: str | None = None) -> str:
    """The metric the study selects on: its first search objective, which every row records
    (``val_bal_acc`` for rows from before it was recorded)."""
    if objective is not None:
        return objective
    recorded = {r.get("objective") for rows in groups.values() for r in rows} - {None, ""}
    return recorded.pop() if len(recorded) == 1 else "val_bal_acc"


def asked_order(rows: list[dict]) -> float:
    """When the search asked for a configuration: its first trial's ``config_index`` (inf when
    not recorded, before ltray 0.3)."""
    known = [r["config_index"] for r in rows if r.get("config_index") is not None and r["config_index"] >= 0]
    return min(known) if known else float("inf")


def pick_best(groups: dict[tuple, list[dict]], objective: str) -> dict[str, list[dict]]:
    """Per method, the seeds of its configuration with the best mean ``objective``; among equal
    means, the one the search asked for first."""
    best: dict[str, tuple[float, list[dict]]] = {}
    for (method, _), rows in sorted(groups.items(), key=lambda kv: asked_order(kv[1])):  # stable: ties keep row order
        score = round(float(np.mean([r[objective] for r in rows])), 12)  # equal accuracies summed in another order tie
        if method not in best or score > best[method][0]:
            best[method] = (score, rows)
    return {m: rows for m, (_, rows) in sorted(best.items())}


def best_configurations(trials, objective: str | None = None) -> dict[str, list[dict]]:
    """Per method, the seeds of its configuration with the best mean validation objective: the
    study's own (:func:`study_objective`), which is what the searcher averaged over repeats;
    among equal means, the one asked for first. The one selection the CLI summary,
    ``ltray.report`` and the dashboard use (the budget table's last budget included)."""
    groups = configurations(trials)
    return pick_best(groups, study_objective(groups, objective))


def method_summary(trials, objective: str | None = None) -> list[dict]:
    """Per method, its selected configuration (:func:`best_configurations`): ``method``,
    ``params``, ``trial_ids``, ``n`` (seeds) and, per ``SUMMARY_COLUMNS`` entry, ``mean_ci``
    over the seeds (NaN values left out), methods in name order."""
    out = []
    for method, rows in best_configurations(trials, objective).items():
        out.append({"method": method, "params": dict(rows[0]["params"] or []), "trial_ids": [r["trial_id"] for r in rows],
                    "n": len(rows), **{k: mean_ci([r[k] for r in rows]) for k in SUMMARY_COLUMNS}})
    return out
