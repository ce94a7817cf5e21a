"""Experiment files, --set overrides and validation: every bad input gets the project's message,
before Ray starts, and nothing is written."""

import os
import re
import textwrap

import pytest

from conftest import run_cli
from ltray.errors import LtrayError
from ltray.config import describe_fields, load_experiment, validate
from ltray.sweep.cli import prepare
from ltray.methods.space import Space, default_points, split_config

QUICK = "experiments/quickstart.py"


def _prep(tmp_path, *sets, exp=QUICK, extra=()):
    return prepare([exp, "--results", str(tmp_path / "results"), *(["--set", *sets] if sets else []), *extra])


def test_quickstart_loads_and_validates(tmp_path):
    exp, _, study_dir = _prep(tmp_path)
    assert exp.name == "quickstart" and "ldam_drw" in exp.methods and exp.data.name == "digits-lt"
    assert study_dir.endswith(os.path.join("results", "quickstart"))


def test_overrides_by_dotted_path(tmp_path):
    exp, _, _ = _prep(tmp_path, "train.epochs=3", "methods=ce,lade", "data.rho=50", "search.asha=true",
                      "train.milestones=0.5,0.75", "search.ranges.lade.alpha=0.05,0.5")
    assert exp.train.epochs == 3 and exp.methods == ("ce", "lade") and exp.data.rho == 50.0
    assert exp.search.asha is True and exp.train.milestones == (0.5, 0.75)
    assert exp.search.ranges == {"lade.alpha": (0.05, 0.5)}


@pytest.mark.parametrize("sets,message", [
    (["methods=ce,arcface"], "unknown method 'arcface'"),
    (["methods="], "methods is empty"),
    (["train.epochs=abc"], "expected a int"),
    (["train.epochs=2.5"], "expected a int"),
    (["train.epochz=3"], "has no field 'epochz'"),
    (["search.asha=maybe"], "expected true/false"),
    (["train=3"], "is a group"),
    (["data.rho=0.5"], "rho must be >= 1"),
    (["model.name=vit"], "unknown model"),
    (["methods=ce,sade", "model.name=resnet34"], "sade trains several experts on a shared trunk"),
    (["data.name=cifar100-lt", "data.root=/nonexistent", "model.name=resnet32"], "cs.toronto.edu"),
    (["resources.num_workers=64"], "one trial needs 64 CPUs"),
    (["resources.gpus_per_worker=1"], "GPUs but the cluster has 0"),
    (["resources.in_process=true", "resources.num_workers=2", "resources.cpus_per_worker=0.5"], "for DDP"),
    (["resources.report_every_s=-1"], "report_every_s"),
    (["search.ranges.lade.alpha=0.5,0.1", "methods=lade"], "empty or inverted"),
    (["search.ranges.lade.alpha=0.2,0.2", "methods=lade"], "empty or inverted"),
    (["search.ranges.lade.alpha=0,0.2", "methods=lade", "search.search_defaults_first=false"], "log scale"),
    (["search.ranges.lade.alpha=0.2,0.5", "methods=lade"], "excludes the default"),
    (["search.ranges.ce.tau=0.2,0.5", "methods=ce"], "searches no knob"),
    (["search.ranges.equalization.lam=0.001,0.01"], "not among methods"),
    (["search.objectives=test_bal_acc"], "never tuned on"),
    (["search.objectives=val_bal_acc,val_few,val_many"], "one or two"),
    (["search.num_samples=2"], "fewer than the 5 methods"),
    (["search.objectives=val_bal_acc,val_few", "search.sampler=tpe"], "nsga2"),
    (["train.milestones=0.5,1.5"], "fractions"),
    (["repeats=0"], "repeats"),
    (["name=../escape"], "study name must be"),
    # issue 18: values that used to start a study (or end in a traceback after Ray started)
    (["seed=-1"], "seed must be in [0,"),
    (["data.subset_seed=-5"], "data.subset_seed must be in"),
    (["seed=1e23"], "seed must lie within"),
    (["train.epochs=1e30"], "train.epochs must lie within"),
    (["train.epochs=200000"], "train.epochs must be in [1, 100000]"),
    (["search.num_samples=1e12"], "search.num_samples must lie within"),
    (["search.num_samples=200000"], "search.num_samples must be in"),
    (["train.batch_size=99999999999"], "train.batch_size must lie within"),
    (["data.rho=1e308"], "without a training image"),
    (["data.rho=116"], "rho is at most 115"),
    (["search.seed=-3"], "search.seed must be in"),
    (["repeats=5000"], "repeats must be in [1, 1000]"),
    (["name=a?b"], "study name must be"),
    (["name=" + "a" * 101], "study name must be"),
    (["broken"], "key=value"),
])
def test_bad_experiments_are_refused_before_anything_is_written(tmp_path, sets, message):
    with pytest.raises(LtrayError, match=re.escape(message)):
        _prep(tmp_path, *sets)
    assert not (tmp_path / "results").exists()


def test_bad_experiment_files(tmp_path):
    (tmp_path / "none.py").write_text("X = 1\n")
    (tmp_path / "crash.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "types.py").write_text(textwrap.dedent("""
        from ltray.config import Experiment
        from ltray.config import Recipe
        EXPERIMENT = Experiment(train=Recipe(epochs="3"))
    """))
    with pytest.raises(LtrayError, match="must define EXPERIMENT"):
        load_experiment(tmp_path / "none.py")
    with pytest.raises(LtrayError, match="failed to run: RuntimeError: boom"):
        load_experiment(tmp_path / "crash.py")
    with pytest.raises(LtrayError, match="train.epochs must be a int"):
        validate(load_experiment(tmp_path / "types.py"))
    with pytest.raises(LtrayError, match="does not exist"):
        load_experiment(tmp_path / "missing.py")


def test_cli_prints_one_clear_error_and_writes_nothing(tmp_path):
    r = run_cli(["-m", "ltray.sweep", QUICK, "--results", str(tmp_path / "r"), "--set", "methods=ce,arcface"])
    assert r.returncode == 2 and "error: unknown method 'arcface'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


def test_help_lists_every_field_with_its_docstring():
    r = run_cli(["-m", "ltray.sweep", "--help"])
    assert r.returncode == 0
    for line in describe_fields():
        name = line.split("(")[0].strip()
        assert name in r.stdout
    assert "train.epochs (int, default 200): Training epochs." in r.stdout
    # with the experiment named, its values; every registered dataset and model among the choices
    r = run_cli(["-m", "ltray.sweep", "experiments/quickstart.py", "--help"])
    assert "with experiments/quickstart.py" in r.stdout and "train.epochs (int, default 30)" in r.stdout
    assert "fashion-mnist-lt" in r.stdout and "cnn-tiny" in r.stdout


def test_the_experiment_file_may_follow_set():
    r = run_cli(["-m", "ltray.sweep", "--set", "methods=nope", "experiments/quickstart.py"])
    assert r.returncode == 2 and "unknown method 'nope'" in r.stderr  # the file was read; --set applied
    r = run_cli(["-m", "ltray.sweep", "--set", "train.epochs=3"])
    assert r.returncode == 2 and "the experiment file is missing" in r.stderr


def test_space_is_conditional_and_defaults_run_first():
    import optuna

    points = default_points(("ce", "lade", "ldam_drw"))
    assert points[0] == {"method": "ce"}
    assert points[1] == {"method": "lade", "lade.alpha": 0.1, "lade.lam": 0.01}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        t = study.ask()
        Space(("ce", "lade", "equalization"))(t)
        method, hp = split_config(t.params)
        assert all(k.startswith(method + ".") or k == "method" for k in t.params)
        assert set(hp) <= set(__import__("ltray.methods", fromlist=["x"]).get_method(method).defaults)
        study.tell(t, 0.5)
    # same knob name in two methods never collides
    names = {k for tr in study.trials for k in tr.params}
    assert {"lade.lam", "equalization.lam"} <= names


def test_submit_retries_only_while_the_job_agent_is_not_ready(monkeypatch):
    """Ray answers 'No available agent to submit job, please try again later' while a head's job
    agent starts: ltray.submit retries that answer (up to a minute) and nothing else."""
    from ltray.sweep import submit
    from ltray.errors import LtrayError

    monkeypatch.setattr(submit.time, "sleep", lambda s: None)

    class Head:  # answers like JobSubmissionClient.submit_job: the agent is busy twice, then takes the job
        def __init__(self, answers):
            self.answers = list(answers)

        def submit_job(self, **kw):
            a = self.answers.pop(0)
            if isinstance(a, Exception):
                raise a
            return a

    busy = RuntimeError("Request failed with status code 500: No available agent to submit job, please try again later..")
    assert submit._submit(Head([busy, busy, "raysubmit_1"]), "python -m ltray.sweep x.py") == "raysubmit_1"
    with pytest.raises(LtrayError, match="refused the job: .*denied"):
        submit._submit(Head([RuntimeError("denied"), "never"]), "x")
    with pytest.raises(LtrayError, match="No available agent"):
        submit._submit(Head([busy] * 3), "x", wait_s=-1)


def test_a_study_from_before_a_new_field_resumes_while_the_field_keeps_its_default(tmp_path):
    import json

    from ltray.config import to_dict

    args = ["experiments/quickstart.py", "--results", str(tmp_path)]
    exp, _, study_dir = prepare(args)
    old = json.loads(json.dumps(to_dict(exp), default=list))
    for new in ("storage", "loggers", "mlflow_uri", "wandb_project"):  # fields added by issue 14
        del old["search"][new]
    os.makedirs(study_dir)
    with open(os.path.join(study_dir, "experiment.json"), "w") as f:
        json.dump(old, f)
    prepare(args + ["--resume"])
    for changed in ("search.storage=journal:/tmp/x.log", "train.epochs=2"):
        with pytest.raises(LtrayError, match="experiment differs"):
            prepare(args + ["--resume", "--set", changed])
