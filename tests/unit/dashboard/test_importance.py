"""The dashboard's parameter importances: PED-ANOVA over a conditional space, computed once per
set of finished trials, and a readable empty figure where there is nothing to rank."""

import functools
import math

import optuna
import pytest
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from dashboard import search_figures
from dashboard import studies

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # PED-ANOVA warns of sparse regimes


def conditional(trial) -> float:
    """ltray's shape of space: a method, then only that method's knobs (``method.knob``)."""
    method = trial.suggest_categorical("method", ["ce", "logit_adjusted", "dive"])
    if method == "logit_adjusted":
        return 0.6 - 0.1 * (trial.suggest_float("logit_adjusted.tau", 0.25, 2.5) - 1.0) ** 2
    if method == "dive":
        tau = trial.suggest_float("dive.tau", 1.0, 5.0)
        power = trial.suggest_float("dive.power", 0.1, 1.0)
        return 0.55 + 0.01 * tau + 0.001 * power
    return 0.5


def make_study(objective=conditional, n_trials=60, storage=None, name=None, directions=("maximize",)):
    study = optuna.create_study(storage=storage, study_name=name, directions=list(directions),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=n_trials)
    return study


def bars(fig) -> dict:
    return dict(zip(fig.data[0].y, fig.data[0].x))


def test_importances_are_ped_anova_over_the_conditional_space():
    study = make_study()
    fig = search_figures.param_importances(search_figures.importances_info(study))
    want = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(
        target_quantile=0.1, region_quantile=1.0, evaluate_on_local=True))
    assert list(bars(fig)) == list(want)  # same order: most important first (drawn on top)
    assert bars(fig) == pytest.approx(want)
    # every method's knobs are ranked, though no trial has them all
    assert set(want) == {"method", "logit_adjusted.tau", "dive.tau", "dive.power"}
    assert "PED-ANOVA" in fig.layout.title.text and "PED-ANOVA" in fig.layout.xaxis.title.text
    assert "60 finished trials" in fig.layout.title.text and not fig.layout.annotations


def test_two_objectives_rank_objective_one_as_maximised():
    def two(trial):
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
        return x + 0.01 * y, y

    study = make_study(two, directions=("maximize", "maximize"))
    info = search_figures.importances_info(study)
    # PED-ANOVA ranks a given target as lower-is-better: objective 1 is maximised, so negated
    want = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), target=lambda t: -t.values[0])
    assert dict(zip(info.params, info.importances)) == pytest.approx(want)
    assert info.target_name == "objective 1" and info.params[0] == "x"


def test_importances_are_computed_once_per_set_of_finished_trials(tmp_path, monkeypatch):
    calls = []
    evaluate = PedAnovaImportanceEvaluator.evaluate

    def counted(self, *args, **kwargs):
        calls.append(1)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(PedAnovaImportanceEvaluator, "evaluate", counted)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    make_study(n_trials=20, storage=url, name="fx")

    def build():  # what the app does on a refresh whose optuna.db changed
        return search_figures.search_figures(url, "fx", importances=functools.partial(studies.importances, tmp_path))

    first = build()["importance"]
    assert len(calls) == 1 and "20 finished trials" in first.layout.title.text
    assert bars(build()["importance"]) == bars(first) and len(calls) == 1
    running = optuna.load_study(study_name="fx", storage=url).ask()  # a running trial reports an epoch
    running.report(0.5, step=1)
    build()
    assert len(calls) == 1
    optuna.load_study(study_name="fx", storage=url).tell(running, 0.7)
    assert "21 finished trials" in build()["importance"].layout.title.text and len(calls) == 2


@pytest.mark.parametrize("complete", [0, 1])
def test_fewer_than_two_finished_trials_give_an_empty_figure_with_a_note(complete):
    study = make_study(n_trials=complete)
    study.ask()  # running
    failed = study.ask()
    failed.suggest_float("dive.tau", 1.0, 5.0)
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    fig = search_figures.param_importances(search_figures.importances_info(study))
    assert len(fig.data) == 0  # an empty state: one line saying why
    assert fig.layout.annotations[0].text == ("Parameter importance (PED-ANOVA): PED-ANOVA needs 2 finished trials; "
                                              f"this study has {complete}")


def test_one_parameter_or_none_is_said_not_hidden():
    one = search_figures.importances_info(make_study(lambda t: t.suggest_float("x", 0, 1), n_trials=10))
    assert one.params == ["x"] and one.importances == [1.0]
    assert "share is 1 by construction" in one.note and "1 in the top 10%" in one.note
    assert search_figures.param_importances(one).layout.annotations[0].text == one.note
    none = search_figures.importances_info(make_study(lambda t: 0.5, n_trials=5))
    assert none.params == [] and none.note == "no parameter was searched"


def test_infinite_trials_are_not_counted():
    study = make_study(n_trials=3)  # an infinite value is COMPLETE in Optuna; PED-ANOVA skips it
    study.optimize(lambda t: (t.suggest_float("dive.tau", 1.0, 5.0), math.inf)[1], n_trials=1)
    assert search_figures.importances_info(study).n_trials == 3
