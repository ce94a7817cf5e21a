"""The dashboard's reads on a results URI (a real S3 server on 127.0.0.1) and on a study whose
search lives in its own search.storage."""

import json
import uuid

import optuna
import pyarrow.fs as pafs
import pytest

from dashboard import search_figures
from dashboard.studies import StudyRefused, list_studies, load, optuna_storage, resolve, signature
from fixtures_study import TRIALS, trial_row, write_study
from ltray import results as R
from ltray.results.storage import open_store


@pytest.fixture
def on_s3(s3, tmp_path):
    local = tmp_path / "results"
    write_study(local, "fx")
    uri = f"{s3['bucket']}/{uuid.uuid4().hex[:8]}/results"
    store = open_store(uri)
    store.makedirs()
    pafs.copy_files(str(local), store.path(), source_filesystem=pafs.LocalFileSystem(), destination_filesystem=store.fs)
    return uri


def test_studies_on_a_uri_are_listed_resolved_and_read(on_s3):
    assert list_studies(on_s3) == ["fx"]
    path = resolve(on_s3, "fx")
    assert path == f"{on_s3}/fx"
    for bad in ("../fx", "fx/trials", "nope", ""):
        with pytest.raises(StudyRefused):
            resolve(on_s3, bad)
    tables, notes = load(path)
    assert tables["trials"].num_rows == len(TRIALS) and notes == []
    # the search figures come from a local copy of the study's optuna.db
    storage, name = optuna_storage(path)
    assert name == "fx" and len(optuna.load_study(study_name=name, storage=storage).trials) == 6
    assert "history" in search_figures.search_figures(storage, name)
    before = signature(path)
    R.write_table(path, "trials", "t9", R.table("trials", trial_row("t9", "ce", {}, 3, 0.5, 0.5)))
    assert signature(path) != before


def test_a_study_whose_search_storage_is_a_journal_shows_its_search(tmp_path):
    from ltray.results.search_storage import open_storage

    results = tmp_path / "results"
    study = write_study(results, "jr", with_optuna=False)
    journal = f"journal:{tmp_path}/search/shared.log"
    (study / "experiment.json").write_text(json.dumps({"name": "jr", "search": {"storage": journal}}))
    # one journal holds two studies (a shared search file): the page shows this study's
    for name, n in (("other", 2), ("jr", 4)):
        optuna.create_study(storage=open_storage(journal, str(study)), study_name=name,
                            direction="maximize").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
    storage, name = optuna_storage(str(study))
    assert name == "jr" and len(optuna.load_study(study_name=name, storage=storage).trials) == 4
    assert not (study / "optuna.db").exists()
    # a journal that is not there is not made by the dashboard, which only reads
    (study / "experiment.json").write_text(json.dumps({"name": "jr", "search": {"storage": journal + ".gone"}}))
    assert optuna_storage(str(study)) is None and not (tmp_path / "search" / "shared.log.gone").exists()
