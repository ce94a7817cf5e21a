"""The search's figures, from the study's Optuna storage: Optuna's own history and parallel
coordinates (Pareto front for two objectives), and PED-ANOVA parameter importances. Like
``dashboard.figures``, what to draw (``importances_info``) is apart from the drawing."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from typing import NamedTuple

import optuna
import optuna.visualization as vis
import plotly.graph_objects as go

from dashboard.style import empty


TOP_QUANTILE = 0.1  # PED-ANOVA ranks parameters by how much they matter to reach this top share of trials


class ImportancesInfo(NamedTuple):
    """What the importance figure draws: PED-ANOVA shares, most important first."""

    params: list[str]
    """parameter names, conditional ones (``method.knob``) included"""
    importances: list[float]
    """each parameter's share of the total importance (sum 1)"""
    target_name: str
    """what was ranked: "objective", or "objective 1" of two"""
    n_trials: int
    """finished trials with a finite target (what PED-ANOVA ranks)"""
    note: str
    """why there are no bars, or a caveat on the bars; "" when none"""


def importance_evaluator() -> optuna.importance.PedAnovaImportanceEvaluator:
    """PED-ANOVA (Watanabe et al., IJCAI 2023; conditional spaces: Conditional PED-ANOVA, KDD 2026)
    with Optuna 5's defaults spelled out, so an Optuna whose default differs draws the same plot:
    how much each parameter matters to reach the top 10% of finished trials, measured against
    where the search sampled. A method's knobs count only in that method's trials. fANOVA,
    Optuna 4's default, is far slower at 1,000 trials (``benchmarks/importance.py``)."""
    return optuna.importance.PedAnovaImportanceEvaluator(target_quantile=TOP_QUANTILE, region_quantile=1.0,
                                                         evaluate_on_local=True)


def _first_objective(study: optuna.Study) -> tuple[Callable[[optuna.trial.FrozenTrial], float] | None, str]:
    """(target, name) of what the importances rank: the objective, or objective 1 of two.
    PED-ANOVA takes a given target as lower-is-better, so a maximised objective 1 is negated."""
    if len(study.directions) == 1:
        return None, "objective"
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0

    def objective_one(trial: optuna.trial.FrozenTrial) -> float:
        return sign * trial.values[0]

    return objective_one, "objective 1"


def importances_info(study: optuna.Study) -> ImportancesInfo:
    """PED-ANOVA importances of every parameter of the study's finished trials, conditional ones
    included; no bars, with a note, below 2 finished trials or without a searched parameter."""
    target, name = _first_objective(study)
    finished = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if math.isfinite(t.values[0])]
    n = len(finished)
    if n < 2:
        return ImportancesInfo([], [], name, n, f"PED-ANOVA needs 2 finished trials; this study has {n}")
    if not any(t.distributions for t in finished):
        return ImportancesInfo([], [], name, n, "no parameter was searched")
    with warnings.catch_warnings(record=True) as caught:  # per refresh they would fill the server's log
        warnings.simplefilter("always")
        shares = optuna.importance.get_param_importances(study, evaluator=importance_evaluator(), target=target)
    thin = sorted({m.group(1) for w in caught if (m := re.search(r"parameter `([^`]+)` have less than 2", str(w.message)))})
    notes = [f"{', '.join(thin)}: fewer than 2 trials in some regimes, their shares are rough"] if thin else []
    top = math.ceil(TOP_QUANTILE * n)
    if top < 5:  # Optuna's PED-ANOVA docs: 5 or more trials on top for a stable answer
        notes.append(f"{n} finished trials, {top} in the top {TOP_QUANTILE:.0%}: the shares are rough")
    if len(shares) == 1:
        notes.append("one parameter: its share is 1 by construction")
    return ImportancesInfo(list(shares), list(shares.values()), name, n, "; ".join(notes))


def param_importances(info: ImportancesInfo) -> go.Figure:
    if not info.params:
        return empty("Parameter importance (PED-ANOVA)", info.note)
    title = (f"Parameter importance (PED-ANOVA: reaching the top {TOP_QUANTILE:.0%} of {info.n_trials} "
             f"finished trials, {info.target_name})")
    fig = go.Figure(go.Bar(x=info.importances, y=info.params, orientation="h",
                           text=[f"{v:.2f}" if v >= 0.01 else "<0.01" for v in info.importances]))
    fig.update_layout(title=title, xaxis_title="PED-ANOVA importance (share of the total)",
                      yaxis_title="parameter", yaxis_autorange="reversed")  # most important on top
    if info.note:
        fig.add_annotation(text=info.note, showarrow=False, x=0, y=1, xref="paper", yref="paper",
                           xanchor="left", yanchor="bottom")  # above the bars: a share-1 bar fills the width
    return fig


def search_figures(storage_url: str, study_name: str,
                   importances: Callable[[optuna.Study], ImportancesInfo] = importances_info) -> dict[str, go.Figure]:
    """Optuna's own figures from the study's SQLite storage, and the PED-ANOVA importances
    (``importances``: the app passes a cached ``importances_info``); a figure Optuna cannot draw
    for this study (too few trials, conditional space) becomes an empty figure saying why."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage_url)
    two = len(study.directions) == 2
    makers = {"history": lambda: vis.plot_optimization_history(study, target=(lambda t: t.values[0]) if two else None,
                                                               target_name="objective 1" if two else "Objective Value"),
              "importance": lambda: param_importances(importances(study)),
              "parallel": lambda: vis.plot_parallel_coordinate(study, target=(lambda t: t.values[0]) if two else None)}
    if two:
        makers["pareto"] = lambda: vis.plot_pareto_front(study)
    out = {}
    for k, make in makers.items():
        try:
            out[k] = make()
        except Exception as e:  # optuna refuses some plots for small or conditional studies
            out[k] = empty(k, f"not available: {e}")
    return out
