"""search.loggers: MLflow and W&B through Ray Tune's own callbacks. Names and missing packages
are refused before Ray starts."""

import importlib.util

import pytest

from ltray.cli import prepare
from ltray.errors import LtrayError
from ltray.experiment import SearchConfig, apply_overrides, load_experiment

QUICK = "experiments/quickstart.py"


def test_loggers_parse_from_the_command_line():
    exp = apply_overrides(load_experiment(QUICK), ["search.loggers=mlflow", "search.mlflow_uri=sqlite:///x.db"])
    assert exp.search.loggers == ("mlflow",) and exp.search.mlflow_uri == "sqlite:///x.db"
    exp = apply_overrides(exp, ["search.loggers=mlflow,wandb", "search.wandb_project=lt"])
    assert exp.search.loggers == ("mlflow", "wandb") and exp.search.wandb_project == "lt"
    assert apply_overrides(exp, ["search.loggers="]).search.loggers == ()


@pytest.mark.parametrize("names,message", [
    (("tensorboard",), "unknown 'tensorboard'; choose from mlflow, wandb"),
    (("mlflow", "mlflow"), "lists a logger twice"),
])
def test_bad_logger_names_are_refused(names, message):
    with pytest.raises(LtrayError, match=message):
        SearchConfig(loggers=names).validate(epochs=2, n_methods=1)


def test_a_missing_package_is_one_clear_error_before_anything_is_written(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(LtrayError, match=r"search.loggers=mlflow needs the mlflow package: pip install 'ltray\[mlflow\]'"):
        prepare([QUICK, "--results", str(tmp_path / "results"), "--set", "search.loggers=mlflow"])
    assert not (tmp_path / "results").exists()
