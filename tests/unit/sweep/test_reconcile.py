"""Before a resumed run: the plan from the rows and the search journal, and Optuna's record made
to agree with them (told what a killed driver never told, rebuilt when lost or damaged, a
study started before the journal adopted). No Ray: real Parquet files and a real optuna.db."""

import math

import optuna
import pytest

from fixtures_study import trial_row
from ltray import results as R
from ltray.config import Experiment
from ltray.results.storage import open_store
from ltray.sweep import journal
from ltray.sweep.journal import Configuration
from ltray.sweep.outcomes import mark_ended
from ltray.sweep.plan import StudyState, plan_run, values_of
from ltray.sweep.reconcile import prepare_search

EXP = Experiment(name="fx", methods=("ce", "logit_adjusted"), repeats=2,
                 search=Experiment().search.__class__(num_samples=3))


def _row(study, tid, method, params, repeat, val, status="completed"):
    row = trial_row(tid, method, params, repeat, val, val - 0.05, status=status)
    row.update(repeat=[repeat], study=["fx"])
    R.write_table(study, "trials", tid, R.table("trials", row))


def _study(tmp_path) -> str:
    """ce at its defaults, both repeats done; logit_adjusted tau=1, repeat 0 done, repeat 1 cut off."""
    study = str(tmp_path / "fx")
    _row(study, "a0", "ce", {}, 0, 0.50)
    _row(study, "a1", "ce", {}, 1, 0.60)
    _row(study, "b0", "logit_adjusted", {"tau": 1.0}, 0, 0.70)
    journal.write(study, Configuration(key="a0", method="ce", hp={}, trials=["a0", "a1"], number=0))
    journal.write(study, Configuration(key="b0", method="logit_adjusted", hp={"tau": 1.0}, trials=["b0", "b1"], number=1))
    return study


def test_the_plan_reruns_what_has_no_final_row_and_asks_for_the_rest(tmp_path):
    study = _study(tmp_path)
    configs = journal.read_all(study)
    state = StudyState.read(study)
    plan = plan_run(EXP, configs, state)
    assert [(c.key, r) for c, r in plan.work] == [("b0", 1)]  # b1 trains again, under its own id
    assert plan.new == 1 and plan.trials == 1 + 2  # one more configuration, on both repeats
    assert values_of(configs[0], state, ("val_bal_acc",)) == [pytest.approx(0.55)]


def test_values_are_the_mean_over_repeats_with_one_and_none_when_all_failed(tmp_path):
    study = str(tmp_path / "fx")
    _row(study, "f0", "ce", {}, 0, math.nan, status="failed")
    _row(study, "f1", "ce", {}, 1, 0.4)
    c = Configuration(key="f0", method="ce", hp={}, trials=["f0", "f1"])
    state = StudyState.read(study)
    assert values_of(c, state, ("val_bal_acc",)) == [0.4]
    _row(study, "f1", "ce", {}, 1, math.nan, status="failed")
    assert values_of(c, StudyState.read(study), ("val_bal_acc",)) is None


def test_a_lost_optuna_db_is_rebuilt_from_the_rows(tmp_path, capsys):
    study = _study(tmp_path)
    setup = prepare_search(EXP, study, resume=True)
    assert "rebuilt from the rows of 2 configurations (it was missing)" in capsys.readouterr().out
    trials = optuna.load_study(study_name="fx", storage=f"sqlite:///{study}/optuna.db").trials
    by_method = {t.params["method"]: t for t in trials if t.state != optuna.trial.TrialState.WAITING}
    assert by_method["ce"].state == optuna.trial.TrialState.COMPLETE and by_method["ce"].value == pytest.approx(0.55)
    assert by_method["logit_adjusted"].state == optuna.trial.TrialState.RUNNING  # b1 still trains
    assert by_method["logit_adjusted"].params["logit_adjusted.tau"] == 1.0
    assert by_method["ce"].user_attrs == {"trial_ids": ["a0", "a1"], "seeds": [0, 1], "method": "ce"}
    assert [(c.key, r) for c, r in setup.plan.work] == [("b0", 1)]


def test_a_damaged_optuna_db_is_set_aside_and_rebuilt(tmp_path, capsys):
    study = _study(tmp_path)
    (tmp_path / "fx" / "optuna.db").write_bytes(b"this is not a database" * 100)
    prepare_search(EXP, study, resume=True)
    out = capsys.readouterr().out
    assert "optuna.db was damaged" in out
    assert [p.name.split(".")[0:2] for p in (tmp_path / "fx" / "damaged").iterdir()] == [["optuna", "db"]]
    assert len(optuna.load_study(study_name="fx", storage=f"sqlite:///{study}/optuna.db").trials) >= 2


def test_a_configuration_the_killed_driver_never_told_is_told_once(tmp_path):
    """Optuna has ce RUNNING though both its trials have rows (the driver died between the rows
    and the tell): --resume tells it, and telling again changes nothing."""
    study = _study(tmp_path)
    st = optuna.create_study(study_name="fx", storage=f"sqlite:///{study}/optuna.db", direction="maximize")
    st.ask({"method": optuna.distributions.CategoricalDistribution(("ce", "logit_adjusted"))})  # number 0: ce
    prepare_search(EXP, study, resume=True)
    prepare_search(EXP, study, resume=True)
    t = optuna.load_study(study_name="fx", storage=f"sqlite:///{study}/optuna.db").trials[0]
    assert t.state == optuna.trial.TrialState.COMPLETE and t.value == pytest.approx(0.55)


def test_a_study_from_before_the_journal_is_adopted_from_optuna_and_the_rows(tmp_path):
    """ltray 0.2 kept no journal: Optuna's asked trials (a duplicate pick among them) are matched
    to the rows by method and knobs, repeat by repeat."""
    study = str(tmp_path / "fx")
    _row(study, "a0", "ce", {}, 0, 0.50)
    _row(study, "a1", "ce", {}, 1, 0.60)
    _row(study, "d0", "ce", {}, 0, 0.50, status="duplicate")
    st = optuna.create_study(study_name="fx", storage=f"sqlite:///{study}/optuna.db", direction="maximize")
    dist = {"method": optuna.distributions.CategoricalDistribution(("ce", "logit_adjusted"))}
    st.add_trial(optuna.trial.create_trial(params={"method": "ce"}, distributions=dist, value=0.55))
    st.enqueue_trial({"method": "ce"})
    st.ask(dist)  # TPE's re-pick of ce: asked, its second repeat never started
    setup = prepare_search(EXP, study, resume=True)
    recorded = {c.key: c.trials for c in journal.read_all(study)}
    assert recorded == {"a0": ["a0", "a1"], "d0": ["d0"]}
    assert [(c.key, r) for c, r in setup.plan.work] == [("d0", 1)] and setup.plan.new == 1


@pytest.mark.parametrize("ended_by_asha", [False, True])
def test_a_damaged_trials_file_is_moved_aside_and_its_trial_trains_again(tmp_path, capsys, ended_by_asha):
    study = _study(tmp_path)
    if ended_by_asha:  # a recorded end must not make the trial final once its row is gone
        mark_ended(study, "a1", "complete", result={"val_bal_acc": 0.6, "progress": 1.0},
                   config={"method": "ce", "hp": {}, "repeat": 1})
    path = tmp_path / "fx" / "trials" / "a1.parquet"
    path.write_bytes(path.read_bytes()[:40])
    setup = prepare_search(EXP, study, resume=True)
    assert "damaged results file moved to" in capsys.readouterr().out
    assert [(c.key, r) for c, r in setup.plan.work] == [("a0", 1), ("b0", 1)]  # a1 trains again
    assert not path.exists() and len(list((tmp_path / "fx" / "damaged" / "trials").iterdir())) == 1
    assert open_store(study).is_file("trials", "a0.parquet")
