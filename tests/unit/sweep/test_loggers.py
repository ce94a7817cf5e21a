"""search.loggers: MLflow and W&B through Ray Tune's own callbacks. Names and missing packages
are refused before Ray starts; a run per trial, tagged so that it maps to its trials row, whose
last val_bal_acc is the table's (checked with the real mlflow, and on a real Ray head)."""

import importlib.util
import json
import os
import struct
import tempfile
from pathlib import Path

import pytest

from conftest import run_cli
from ltray.sweep import loggers
from ltray import results as R
from ltray.sweep.cli import prepare
from ltray.errors import LtrayError
from ltray.config import LOGGERS, SearchConfig, apply_overrides, load_experiment

QUICK = "experiments/quickstart.py"


class FakeTrial:
    """What Ray's logger callbacks read of a Tune trial."""

    def __init__(self, trial_id: str, config: dict):
        self.trial_id, self.config, self.local_path = trial_id, config, "/nonexistent"

    def __str__(self):
        return f"run_trial_{self.trial_id}"


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


def test_every_logger_name_has_a_builder():
    assert set(loggers.BUILDERS) == set(LOGGERS)


def test_mlflow_uri_defaults_to_the_environment_then_a_sqlite_file_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert loggers.mlflow_tracking_uri("") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert loggers.mlflow_tracking_uri("") == "http://tracking:5000"
    assert loggers.mlflow_tracking_uri("sqlite:////data/m.db") == "sqlite:////data/m.db"


def test_mlflow_callback_tags_each_run_with_its_trial_and_method(tmp_path):
    """Ray's callback driven by hand with the real mlflow: one run per trial, the trial's knobs
    as params, ltray's trial id and method as tags, metrics at Tune's iteration. It also
    survives Tune's pickling (the callbacks are saved in tuner.pkl for --resume)."""
    import ray.cloudpickle
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (cb,) = loggers.tune_callbacks(SearchConfig(loggers=("mlflow",), mlflow_uri=uri), "study")
    cb = ray.cloudpickle.loads(ray.cloudpickle.dumps(cb))
    cb.setup()
    trials = [FakeTrial("a_00000", {"method": "ce"}), FakeTrial("a_00001", {"method": "logit_adjusted", "logit_adjusted.tau": 1.5})]
    for t in trials:
        cb.log_trial_start(t)
    for i, t in enumerate(trials):
        cb.log_trial_result(1, t, {"training_iteration": 1, "val_bal_acc": 0.5 + i, "config": t.config})
        cb.log_trial_result(2, t, {"training_iteration": 2, "val_bal_acc": 0.25 + i, "config": t.config})
        cb.log_trial_end(t)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("study").experiment_id])
    by_id = {r.data.tags["trial_id"]: r for r in runs}
    assert sorted(by_id) == ["a_00000", "a_00001"]
    for i, t in enumerate(trials):
        run = by_id[t.trial_id]
        assert run.info.status == "FINISHED" and run.data.tags["method"] == t.config["method"]
        assert run.data.tags["study"] == "study" and run.info.run_name == str(t)
        assert run.data.params == {k: str(v) for k, v in t.config.items()}
        assert run.data.metrics["val_bal_acc"] == 0.25 + i  # the last report, not the best
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_bal_acc")] == [1, 2]


def test_wandb_callback_names_project_group_and_tags_each_run(monkeypatch):
    """What Ray's W&B callback hands wandb.init for a trial (the logging actor itself needs Ray).
    Without wandb installed, stand-ins take the place of wandb and of Ray's config cleaning
    (which reads wandb's types)."""
    import ray.air.integrations.wandb as ray_wandb

    if importlib.util.find_spec("wandb") is None:
        monkeypatch.setattr(ray_wandb, "wandb", object())
        monkeypatch.setattr(ray_wandb, "_clean_log", lambda obj, **kw: obj)
    (cb,) = loggers.tune_callbacks(SearchConfig(loggers=("wandb",)), "study")
    assert cb.project == "study" and cb.group == "study"
    (cb,) = loggers.tune_callbacks(SearchConfig(loggers=("wandb",), wandb_project="lt"), "study")
    assert cb.project == "lt" and cb.group == "study"
    started = {}
    monkeypatch.setattr(cb, "_start_logging_actor", lambda trial, exclude, **kw: started.update({trial.trial_id: kw}))
    cb.log_trial_start(FakeTrial("a_00001", {"method": "logit_adjusted", "logit_adjusted.tau": 1.5}))
    cb.log_trial_start(FakeTrial("a_00002", {"method": "ce"}))
    one = started["a_00001"]
    assert (one["id"], one["project"], one["group"], one["tags"]) == ("a_00001", "lt", "study", ["logit_adjusted"])
    assert one["config"] == {"method": "logit_adjusted", "logit_adjusted.tau": 1.5}
    assert started["a_00002"]["tags"] == ["ce"]


# ---------------------------------------------------------------- on a real Ray head

# W&B's logging actor runs on the Ray head, with the environment the session's head is started
# with (after collection, so from here): W&B never uploads from a test, and writes under WANDB_DIR
if importlib.util.find_spec("wandb") is not None:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_DIR", tempfile.mkdtemp(prefix="ltray-wandb-"))

TINY = ["train.epochs=2", "train.warmup_epochs=1", "search.num_samples=2", "methods=ce,balanced_softmax"]


def _sweep(ray_head, results, *sets, extra=()):
    return run_cli(["-m", "ltray.sweep", QUICK, "--address", ray_head["address"],
                    "--results", str(results), *extra, "--set", *TINY, *sets], env=ray_head["env"])


@pytest.mark.ray
def test_mlflow_runs_of_a_real_study_end_on_the_trials_tables_values(ray_head, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = _sweep(ray_head, tmp_path, "methods=ce,logit_adjusted", "search.num_samples=3", "search.loggers=mlflow",
               f"search.mlflow_uri={uri}", "resources.in_process=true", "resources.report_every_s=0",
               "resources.max_concurrent_trials=2", extra=["--name", "logged"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"MLflow: one run per trial in experiment 'logged' at {uri}" in r.stdout
    rows = {t["trial_id"]: t for t in R.load_study(str(tmp_path / "logged"), ("trials",))["trials"].to_pylist()}
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("logged").experiment_id])
    by_id = {run.data.tags["trial_id"]: run for run in runs}
    assert len(runs) == len(by_id) == 3 and sorted(by_id) == sorted(rows)
    for trial_id, run in by_id.items():
        row = rows[trial_id]
        assert row["status"] in ("completed", "duplicate") and run.info.status == "FINISHED"
        assert run.data.tags["method"] == run.data.params["method"] == row["method"]
        knobs = {k.split(".", 1)[1]: float(v) for k, v in run.data.params.items() if k.startswith(row["method"] + ".")}
        assert knobs == dict(row["params"] or [])
        history = client.get_metric_history(run.info.run_id, "val_bal_acc")
        assert len(history) == (1 if row["status"] == "duplicate" else 3)  # two epochs, then the stored result
        last = max(history, key=lambda m: (m.step, m.timestamp))
        assert last.value == run.data.metrics["val_bal_acc"] == row["val_bal_acc"], (trial_id, history, row)
        if row["status"] == "completed":  # the stored result carries its test metrics, reported, never selected on
            assert run.data.metrics["test_bal_acc"] == row["test_bal_acc"], (trial_id, run.data.metrics)
        assert run.data.metrics["selected_epoch"] == row["best_epoch"]  # one meaning: the 0-based epoch
    assert any("logit_adjusted.tau" in run.data.params for run in runs)
    assert os.path.isfile(tmp_path / "mlflow.db")


def _wandb_records(path: Path) -> list:
    """The records of an offline run's ``.wandb`` file: a LevelDB-style log (a 7-byte ":W&B" file
    header; 32 KiB blocks of chunks with a crc32 / length / type header) of protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data, pos, chunks, out = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _crc, size, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if size == kind == 0:
            break
        chunks, pos = chunks + data[pos + 7:pos + 7 + size], pos + 7 + size
        if kind in (1, 4):  # FULL or LAST: a whole record
            out.append(wandb_internal_pb2.Record.FromString(chunks))
            chunks = b""
    return out


@pytest.mark.ray
def test_wandb_offline_runs_of_a_real_study_end_on_the_trials_tables_values(ray_head, tmp_path):
    """Offline runs (wandb is in the test extra), read back from their files (offline, wandb
    writes neither config.yaml nor wandb-summary.json)."""
    if os.environ.get("WANDB_MODE") != "offline":
        pytest.skip("WANDB_MODE is not offline: this test never uploads")
    r = _sweep(ray_head, tmp_path, "methods=ce,logit_adjusted", "search.num_samples=3", "search.loggers=wandb",
               "resources.in_process=true", "resources.report_every_s=0", "resources.max_concurrent_trials=2",
               extra=["--name", "wandb-logged"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = {t["trial_id"]: t for t in R.load_study(str(tmp_path / "wandb-logged"), ("trials",))["trials"].to_pylist()}
    runs = {p.stem.removeprefix("run-"): _wandb_records(p) for p in Path(os.environ["WANDB_DIR"], "wandb").glob("offline-run-*/run-*.wandb")}
    runs = {trial_id: records for trial_id, records in runs.items() if trial_id in rows}  # the run id is the trial id
    assert sorted(runs) == sorted(rows)
    for trial_id, records in runs.items():
        row = rows[trial_id]
        (run,) = [rec.run for rec in records if rec.WhichOneof("record_type") == "run"]
        assert (run.project, run.run_group, list(run.tags)) == ("wandb-logged", "wandb-logged", [row["method"]])
        assert {u.key: json.loads(u.value_json) for u in run.config.update}["method"] == row["method"]
        history = [{"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in rec.history.item}
                   for rec in records if rec.WhichOneof("record_type") == "history"]
        values = [h["val_bal_acc"] for h in history if "val_bal_acc" in h]
        assert len(values) == (1 if row["status"] == "duplicate" else 3)  # two epochs, then the stored result
        assert values[-1] == row["val_bal_acc"], (trial_id, values, row)
