"""A study's files on a local folder and on a real S3-protocol server (moto, on 127.0.0.1)."""

import uuid

import numpy as np
import pyarrow.fs as pafs
import pytest

from conftest import run_cli
from ltray.sweep import claims, outcomes
from ltray import results as R
from ltray.results.storage import Store, join, open_store


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "study")
    s3 = request.getfixturevalue("s3")
    return f"{s3['bucket']}/{uuid.uuid4().hex[:8]}/study"


def test_join_keeps_a_query_last_and_local_paths_plain():
    assert join("s3://b/results?endpoint_override=h:9000", "st", "trials") == "s3://b/results/st/trials?endpoint_override=h:9000"
    assert join("s3://b", "st") == "s3://b/st"
    assert join("results", "st") == "results/st"


def test_a_write_is_whole_and_replaces_the_old_file(where):
    store = open_store(where)
    store.write_bytes(b"first", "ended", "t1")
    store.write_bytes(b"second, longer", "ended", "t1")
    assert store.read_bytes("ended", "t1") == b"second, longer"
    # no temporary or partial file is left beside it, and hidden names are not listed
    names = [i.base_name for i in store.fs.get_file_info(pafs.FileSelector(store.path("ended")))]
    assert names == ["t1"]
    with pytest.raises(FileNotFoundError):
        store.read_bytes("ended", "nope")


def test_create_new_refuses_an_existing_file(where):
    store = open_store(where)
    assert store.create_new(b"a", "claims", "k")
    assert not store.create_new(b"b", "claims", "k")
    assert store.read_bytes("claims", "k") == b"a"


def test_tables_claims_and_ends_round_trip(where):
    meta = R.TrialMeta(study="s", trial_id="t1", method="ce", params={"lr": 0.1}, seed=0, repeat=0, dataset="d",
                       rho=10.0, model="m", num_workers=1)
    row = R.TrialRecord.of(meta, status="completed", val_bal_acc=0.5).columns()
    R.write_table(where, "trials", "t1", R.table("trials", row))
    t = R.load_study(where)["trials"]
    assert t.column("trial_id").to_pylist() == ["t1"] and t.column("val_bal_acc").to_pylist() == [0.5]
    assert R.finished_trials(where) == {"t1": "completed"}
    # the first trial to claim a configuration owns it; a second one is told whose it is
    assert claims.claim(where, "ce", {"lr": 0.1}, 0, 0, "t1") == "t1"
    assert claims.claim(where, "ce", {"lr": 0.1}, 0, 0, "t2") == "t1"
    assert set(claims.claims(where)) == {"t1"}
    outcomes.mark_ended(where, "t1", "complete", result={"val_bal_acc": np.float64(0.5)})
    assert outcomes.outcomes(where)["t1"]["result"] == {"val_bal_acc": 0.5}


def test_a_stage_checkpoint_is_written_once_and_read_back(where, monkeypatch):
    from ltray.sweep import stages
    from ltray.datasets import DataConfig
    from ltray.config import Recipe

    plan = stages.StagePlan(study="s", study_dir=where, data=DataConfig(), model="linear", pretrain="",
                            pretrain_recipe=Recipe(), recipes={})
    calls = []

    def train():
        calls.append(1)
        return {"w": __import__("torch").ones(2)}, [{"epoch": 0}], 0.5, 0.4

    for _ in range(2):
        state = stages._stage(plan, "model-ce-abc", "model", "ce", 0, "hash", "t1", train)
        assert state["w"].tolist() == [1.0, 1.0]
    assert calls == [1]
    assert R.load_study(where, ("stages",))["stages"].column("key").to_pylist() == ["model-ce-abc"]


def test_a_missing_bucket_is_one_clear_error_before_ray_starts(s3):
    r = run_cli(["-m", "ltray.sweep", "experiments/quickstart.py", "--results", "s3://no-such-bucket-ltray/r",
                 "--set", "train.epochs=1"], timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: cannot write results under s3://no-such-bucket-ltray/r")


def test_a_bad_search_storage_is_refused_before_ray_starts(tmp_path):
    r = run_cli(["-m", "ltray.sweep", "experiments/quickstart.py", "--results", str(tmp_path),
                 "--set", "search.storage=notaurl"], timeout=120)
    assert r.returncode == 2 and "search.storage must be" in r.stderr, r.stderr
    r = run_cli(["-m", "ltray.sweep", "experiments/quickstart.py", "--results", str(tmp_path),
                 "--set", "search.storage=nosuchdialect://x/y"], timeout=120)
    assert r.returncode == 2 and "cannot open search.storage" in r.stderr, r.stderr
    assert not (tmp_path / "quickstart").exists()  # nothing written


def test_the_default_search_state_of_a_uri_study_is_copied_and_fetched_back(s3):
    import os

    import optuna

    from ltray.results import search_storage

    study_dir = f"{s3['bucket']}/{uuid.uuid4().hex[:8]}/st"
    run = lambda storage, n: optuna.create_study(storage=storage, study_name="st", load_if_exists=True).optimize(  # noqa: E731
        lambda t: t.suggest_float("x", 0, 1), n_trials=n)
    run(search_storage.open_storage("", study_dir), 3)
    search_storage.publish("", study_dir)
    db = search_storage.local_db(study_dir)
    # another driver machine (no working copy; the path is the same on every machine) resumes from the copy
    os.remove(db)
    again = search_storage.open_storage("", study_dir, resume=True)
    assert len(optuna.load_study(storage=again, study_name="st").trials) == 3
    # this machine's file, ahead of the copy (its driver died before copying), is kept on resume
    run(again, 2)
    again = search_storage.open_storage("", study_dir, resume=True)
    assert len(optuna.load_study(storage=again, study_name="st").trials) == 5
    # a new study of the same name (the old one deleted) does not inherit the old search
    fresh = search_storage.open_storage("", study_dir)
    assert optuna.get_all_study_summaries(fresh) == []


def test_a_run_that_ended_copies_its_working_copy_once_more_and_removes_it(s3, tmp_path, monkeypatch):
    import os
    import tempfile

    import optuna

    from ltray.results import search_storage

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the working copies of this test only
    study_dir = f"{s3['bucket']}/{uuid.uuid4().hex[:8]}/st"
    optuna.create_study(storage=search_storage.open_storage("", study_dir), study_name="st").optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2)  # not yet copied: the end copies it
    db = search_storage.local_db(study_dir)
    # the study's copy cannot be written: the working copy (the only one with the trials) stays
    with monkeypatch.context() as m, pytest.raises(OSError):
        m.setattr(Store, "write_bytes", lambda *a, **k: (_ for _ in ()).throw(OSError("no space")))
        search_storage.retire("", study_dir)
    assert os.path.isfile(db) and db.startswith(str(tmp_path))
    search_storage.retire("", study_dir)
    assert not os.path.exists(os.path.dirname(db))
    again = search_storage.open_storage("", study_dir, resume=True)  # a later --resume: from the study's copy
    assert len(optuna.load_study(storage=again, study_name="st").trials) == 2


def test_one_uri_on_two_endpoints_is_two_working_copies(s3, monkeypatch):
    """The same bucket and path on another S3 server (or another session's test server) is another
    study: a working copy shared between them made one resume from the other's search."""
    from ltray.results import search_storage

    study_dir = f"{s3['bucket']}/same/st"
    here = search_storage.local_db(study_dir)
    assert here == search_storage.local_db(study_dir)  # every machine computes the same path
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    assert search_storage.local_db(study_dir) != here
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["env"]["AWS_ENDPOINT_URL_S3"])
    assert search_storage.local_db(study_dir) == here  # the generic variable names the same server
    assert search_storage.local_db(f"{study_dir}?endpoint_override=127.0.0.1:2") != here


def test_a_stage_lock_on_a_uri_is_per_endpoint_too(s3, tmp_path, monkeypatch):
    """The stage lock of a study on a URI lives on this machine, in the same kind of folder as the
    search working copy: keyed alike, by the URI and its server."""
    import tempfile

    from ltray.sweep import stages

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    study_dir = f"{s3['bucket']}/same/st"

    def locked() -> set:
        with stages._lock(study_dir, "stage-key"):
            pass
        return {str(p.parent) for p in (tmp_path / "ltray-stage-locks").glob("*/.lock")}

    here = locked()
    assert len(here) == 1 and locked() == here  # every process of this machine takes the same lock
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    assert len(locked()) == 2


def test_names_that_mean_something_in_a_uri_stay_in_the_path(s3, tmp_path, monkeypatch):
    base = f"{s3['bucket']}/{uuid.uuid4().hex[:8]}"
    for name in ("run#2", "a b", "50%"):
        open_store(join(base, name)).write_bytes(name.encode(), "x")
    assert sorted(i.base_name for i in open_store(base).listdir()) == ["50%", "a b", "run#2"]
    # a relative folder is the one under the working directory of the call; file:// is local
    monkeypatch.chdir(tmp_path)
    assert open_store("res").root == str(tmp_path / "res")
    monkeypatch.chdir(tmp_path.parent)
    assert open_store("res").root == str(tmp_path.parent / "res")
    assert open_store(f"file://{tmp_path}/res").local
