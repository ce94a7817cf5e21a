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


def method_summary(trials, objective: str | None = None) -> list[dict]:
    """Per method, its selected configuration (:func:`best_configurations`): ``method``,
    ``params``, ``trial_ids``, ``n`` (seeds) and, per ``SUMMARY_COLUMNS`` entry, ``mean_ci``
    over the seeds (NaN values left out), methods in name order."""
    out = []
    for method, rows in best_configurations(trials, objective).items():
        out.append({"method": method, "params": dict(rows[0]["params"] or []), "trial_ids": [r["trial_id"] for r in rows],
                    "n": len(rows), **{k: mean_ci([r[k] for r in rows]) for k in SUMMARY_COLUMNS}})
    return out
