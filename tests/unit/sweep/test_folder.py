"""What a run may start in, and what it says when it may not: an earlier run's leftovers need
--resume, a resume names every field that changed, and the inputs that used to slip through
(an empty --name, a file that is not Python, an experiment that exits) get one clear error."""

import json

import pytest

from conftest import ROOT
from fixtures_study import trial_row
from ltray import results as R
from ltray.config import Experiment, apply_overrides, load_experiment, to_dict
from ltray.errors import LtrayError
from ltray.sweep import folder
from ltray.sweep.cli import prepare, print_summary

QUICK = str(ROOT / "experiments" / "quickstart.py")


@pytest.mark.parametrize("leftover", ["experiment.json", "optuna.db", "claims/abc", "search/x.json", "epochs/t.parquet"])
def test_a_new_run_over_an_earlier_runs_leftovers_needs_resume(tmp_path, leftover):
    """A run killed before any trial finished leaves files, and no trials row: a new run there
    must not reuse them silently (its seed, its Optuna study, its claims)."""
    path = tmp_path / "results" / "quickstart" / leftover
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    with pytest.raises(LtrayError, match=r"holds an earlier run's files \(.*\); pass --resume"):
        prepare([QUICK, "--results", str(tmp_path / "results")])


def test_a_resume_names_every_field_that_differs(tmp_path):
    exp = load_experiment(QUICK)
    study = tmp_path / "results" / "quickstart"
    study.mkdir(parents=True)
    (study / "experiment.json").write_text(json.dumps(to_dict(exp), default=list))
    changed = apply_overrides(exp, ["train.epochs=7", "methods=ce,lade"])
    with pytest.raises(LtrayError) as e:
        folder.check(changed, str(study), resume=True)
    assert "train.epochs: started 30, now 7" in str(e.value) and "methods: started" in str(e.value)
    folder.check(exp, str(study), resume=True)  # the same experiment resumes


def test_a_resume_without_the_studys_experiment_file_is_refused(tmp_path):
    study = tmp_path / "results" / "quickstart"
    (study / "trials").mkdir(parents=True)
    with pytest.raises(LtrayError, match="experiment.json is missing"):
        folder.check(load_experiment(QUICK), str(study), resume=True)


def test_inputs_that_used_to_slip_through(tmp_path):
    with pytest.raises(LtrayError, match="study name must be"):
        prepare([QUICK, "--results", str(tmp_path), "--name", ""])  # not silently the experiment's own name
    text = tmp_path / "quick"
    text.write_text((ROOT / "experiments" / "quickstart.py").read_text())
    with pytest.raises(LtrayError, match="must be a Python file ending in .py"):
        prepare([str(text)])
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(0)\n")
    with pytest.raises(LtrayError, match=r"called sys.exit\(0\)"):
        prepare([str(exits)])
    assert not (tmp_path / "results").exists()


def test_a_study_where_no_trial_has_a_result_ends_with_an_error(tmp_path, capsys):
    study = str(tmp_path / "fx")
    for tid in ("a", "b"):
        row = trial_row(tid, "ce", {}, 0, 0.5, 0.4, status="failed")
        R.write_table(study, "trials", tid, R.table("trials", row))
    assert print_summary(study) is False
    assert "error: no trial of" in capsys.readouterr().err
    R.write_table(study, "trials", "c", R.table("trials", trial_row("c", "ce", {}, 0, 0.5, 0.4)))
    assert print_summary(study) is True


def test_the_experiment_recorded_is_what_a_resume_compares(tmp_path):
    """differences() compares plain values: a tuple recorded as a JSON list is the same."""
    exp = Experiment(methods=("ce", "lade"))
    saved = json.loads(json.dumps(to_dict(exp), default=list))
    assert folder.differences(saved, exp) == []
    saved["train"]["lr"] = 0.5
    assert folder.differences(saved, exp) == ["train.lr: started 0.5, now 0.1"]
