"""Parameter importance of a 1,000-trial study: fANOVA (Optuna 4's default) against PED-ANOVA
(the dashboard's, ``dashboard.figures.importance_evaluator``), in one run.

    python benchmarks/importance.py [--trials 1000] [--methods 5,9,12,15]

Each study samples ltray's own define-by-run space (``ltray.space.Space``: a categorical method,
then only that method's knobs) at random, with a synthetic objective: a per-method level plus a
bump in each method's first knob. --methods lists how many methods each study searches: the
quickstart's 5, the fashion_lt table's 9, then more of the registered ones. fANOVA one-hot
encodes the method and enumerates every combination of its columns' splits, so its time roughly
doubles with each method (with all 19 it was stopped unfinished after 11 CPU minutes,
2026-11-25); it also ranks only the parameters every trial has, i.e. the method alone. Prints both times, the ratio, what each
ranks first, and what the dashboard pays per refresh for the last study: the SQLite load, then
PED-ANOVA when a trial has finished, or the cache's answer when none has.
"""

import argparse
import functools
import math
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
from optuna.importance import FanovaImportanceEvaluator, get_param_importances

from dashboard import search_figures
from dashboard import studies
from ltray.methods import method_names
from ltray.methods.space import Space


# the quickstart's 5 methods, then the rest of experiments/fashion_lt.py's 9
FASHION_LT = ("ce", "logit_adjusted", "balanced_softmax", "lade", "ldam_drw", "equalization", "dive", "crt", "mixup")


def unit(value, dist) -> float:
    """A parameter's value mapped to [0, 1] within its declared range."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices.index(value) / max(len(dist.choices) - 1, 1)
    lo, hi, v = dist.low, dist.high, value
    if dist.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return (v - lo) / (hi - lo) if hi > lo else 0.0


def synthetic_study(methods: list[str], n_trials: int, seed: int = 0) -> optuna.Study:
    rng = np.random.default_rng(seed)
    level = dict(zip(methods, rng.uniform(0.50, 0.54, len(methods))))  # balanced accuracy per method
    space = Space(tuple(methods))

    def objective(trial: optuna.Trial) -> float:
        space(trial)
        method = trial.params["method"]
        knobs = [k for k in trial.params if k.startswith(method + ".")]
        bump = 0.0
        if knobs:  # a method's first knob at its best (30% of its range) beats a method without knobs
            bump = 0.06 - 0.3 * (unit(trial.params[knobs[0]], trial.distributions[knobs[0]]) - 0.3) ** 2
        return level[method] + bump + rng.normal(0, 0.005)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return study


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def best_of(repeats, fn):
    """Fastest of a few runs (the first pays imports and caches), and the result."""
    runs = [timed(fn) for _ in range(repeats)]
    return min(t for t, _ in runs), runs[0][1]


def top(importances: dict, k: int = 3) -> str:
    return ", ".join(f"{p} {v:.2f}" for p, v in list(importances.items())[:k])


def dashboard_costs(study: optuna.Study) -> tuple[float, float, float]:
    """Seconds of the dashboard's importance figure on a refresh whose optuna.db changed: loading
    the trials from SQLite (the other search figures need it too), PED-ANOVA when a trial has
    finished since the last refresh, and the cache's answer when none has."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'optuna.db'}"
        optuna.create_study(storage=url, study_name="bench", direction="maximize").add_trials(study.get_trials())

        def load() -> optuna.Study:
            loaded = optuna.load_study(study_name="bench", storage=url)
            loaded.get_trials(deepcopy=False)
            return loaded

        t_load, loaded = best_of(3, load)
        t_new, _ = best_of(3, lambda: search_figures.importances_info(loaded))
        cached = functools.partial(studies.importances, Path(folder))
        cached(loaded)
        t_cached, _ = best_of(3, lambda: cached(loaded))
    return t_load, t_new, t_cached


def compare(methods: list[str], n_trials: int) -> optuna.Study:
    study = synthetic_study(methods, n_trials)
    n_params = len({k for t in study.trials for k in t.params})
    print(f"{n_trials} trials, {len(methods)} methods, {n_params} parameters (conditional):")
    t_ped, ped = best_of(3, lambda: get_param_importances(study, evaluator=search_figures.importance_evaluator()))
    print(f"  PED-ANOVA: {t_ped:9.3f} s, {len(ped)} parameters ranked; top: {top(ped)}")
    t_fanova, fanova = timed(lambda: get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0)))
    print(f"  fANOVA   : {t_fanova:9.3f} s, {len(fanova)} ranked; top: {top(fanova)}")
    print(f"  speed-up : {t_fanova / t_ped:.0f}x")
    return study


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--methods", default="5,9,12,15", help="comma-separated numbers of methods, one study each")
    a = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # PED-ANOVA warns of every knob's sparse regimes (absent in other methods)
    order = list(FASHION_LT) + [m for m in method_names() if m not in FASHION_LT]
    for n in map(int, a.methods.split(",")):
        study = compare(order[:n], a.trials)
    t_load, t_new, t_cached = dashboard_costs(study)
    print(f"dashboard, last study: SQLite load {t_load * 1000:.0f} ms; then importances {t_new * 1000:.0f} ms "
          f"when a trial has finished, {t_cached * 1000:.1f} ms from the cache when none has")

if __name__ == "__main__":
    main()
