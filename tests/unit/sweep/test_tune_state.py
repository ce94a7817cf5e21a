"""The whole copy of Tune's state that lets --resume survive an upload cut off by a killed
driver, and a disk that filled mid-write."""

import json
import os
import pickle

import pytest

from ltray.sweep.tune_state import drop_damaged_train_state, restore_tune_state, snapshot_tune_state, tune_state_files


def _write_state(folder, stamp="2026-01-01_00-00-00", trials=3, truncate=False):
    os.makedirs(folder, exist_ok=True)
    state = json.dumps({"trial_data": [["x" * 100, "y"]] * trials, "runner_data": {"n": trials}}).encode()
    files = {f"experiment_state-{stamp}.json": state[:40] if truncate else state,
             f"search_gen_state-{stamp}.json": pickle.dumps({"counter": trials}),  # a pickle despite the name
             f"searcher-state-{stamp}.pkl": pickle.dumps({"ot_trials": list(range(trials))})}
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return files


def _tune(study):
    return os.path.join(study, "ray", "tune")


def _copied(tmp_path, trials=3):
    """A staging folder holding a saved set, and a study holding its copy."""
    staging, study = str(tmp_path / "staging"), str(tmp_path / "study")
    saved = _write_state(staging, trials=trials)
    snapshot_tune_state(staging, study)
    return staging, study, saved


def _kept(study):
    """The file names of the copy's set, from its manifest."""
    good = os.path.join(_tune(study), "good")
    return sorted(json.load(open(os.path.join(good, "set.json"))))


def test_a_whole_set_is_copied_with_its_manifest_and_a_truncated_one_is_not(tmp_path):
    staging, study = str(tmp_path / "staging"), str(tmp_path / "study")
    files = _write_state(staging)
    assert tune_state_files(staging) == files
    assert snapshot_tune_state(staging, study)
    good = os.path.join(_tune(study), "good")
    assert _kept(study) == sorted(files) and len(os.listdir(good)) == 4
    _write_state(staging, stamp="2026-01-02_00-00-00", truncate=True)  # a newer set, truncated
    assert tune_state_files(staging) is None
    assert not snapshot_tune_state(staging, study)  # keeps the previous whole copy
    assert _kept(study) == sorted(files)
    newer = _write_state(staging, stamp="2026-01-03_00-00-00")  # a resumed session: its own names
    assert snapshot_tune_state(staging, study)
    assert _kept(study) == sorted(newer) and len(os.listdir(good)) == 4  # the earlier set deleted


def test_an_unchanged_file_is_not_copied_again(tmp_path, monkeypatch):
    from ltray.results.storage import Store

    staging, study, _ = _copied(tmp_path, trials=2)
    written = []
    real = Store.write_bytes
    monkeypatch.setattr(Store, "write_bytes", lambda self, data, *parts: written.append(parts[-1]) or real(self, data, *parts))
    snapshot_tune_state(staging, study)
    assert written == ["set.json"]


def test_a_torn_set_is_replaced_by_the_copy_and_the_same_set_is_left_alone(tmp_path, capsys):
    """The failure seen in CI: Tune's upload, cut off by the killed driver, left the trial count
    of a later save next to the trial list of an earlier one."""
    _, study, saved = _copied(tmp_path, trials=2)
    _write_state(_tune(study), trials=2)  # Tune's own upload, whole
    restore_tune_state(study)
    assert capsys.readouterr().out == ""
    name = next(n for n in saved if n.startswith("experiment_state-"))
    older = json.dumps({"trial_data": [["x" * 100, "y"]], "runner_data": {"n": 1}}).encode()
    with open(os.path.join(_tune(study), name), "wb") as f:  # the trial list of the save before
        f.write(older)
    restore_tune_state(study)
    assert "torn or behind" in capsys.readouterr().out
    assert tune_state_files(_tune(study)) == saved


def test_a_truncated_set_is_replaced_by_the_copy(tmp_path, capsys):
    _, study, saved = _copied(tmp_path)
    _write_state(_tune(study), stamp="2025-12-31_00-00-00")  # an earlier session's set is dropped too
    _write_state(_tune(study), truncate=True)  # what ENOSPC mid-write leaves
    restore_tune_state(study)
    assert "damaged" in capsys.readouterr().out
    assert tune_state_files(_tune(study)) == saved
    assert sorted(n for n in os.listdir(_tune(study)) if n != "good") == sorted(saved)


def test_a_copy_cut_off_midway_leaves_the_previous_set_whole(tmp_path, capsys, monkeypatch):
    """The driver dies (or the disk fills) while copying the next set: the previous set is
    still the one the manifest names, whole, and --resume uses it."""
    from ltray.results.storage import Store

    staging, study, saved = _copied(tmp_path)
    _write_state(staging, trials=4)
    real, calls = Store.write_bytes, []

    def dies_on_the_second_write(self, data, *parts):
        calls.append(parts)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(self, data, *parts)

    monkeypatch.setattr(Store, "write_bytes", dies_on_the_second_write)
    with pytest.raises(OSError):
        snapshot_tune_state(staging, study)
    monkeypatch.setattr(Store, "write_bytes", real)
    _write_state(_tune(study), trials=4, truncate=True)  # Tune's own set, damaged by the same disk
    restore_tune_state(study)
    assert "damaged" in capsys.readouterr().out
    assert tune_state_files(_tune(study)) == saved


def test_a_damaged_copy_is_not_used(tmp_path, capsys):
    _, study, saved = _copied(tmp_path)
    good = os.path.join(_tune(study), "good")
    name = next(n for n in os.listdir(good) if "searcher-state-" in n)
    with open(os.path.join(good, name), "r+b") as f:
        f.truncate(5)
    own = _write_state(_tune(study), trials=5)
    restore_tune_state(study)
    assert capsys.readouterr().out == "" and tune_state_files(_tune(study)) == own != saved


def test_a_study_from_before_the_manifest_is_repaired_only_when_damaged(tmp_path, capsys):
    study = str(tmp_path / "study")
    old = _write_state(os.path.join(_tune(study), "good"), trials=1)  # the copy as it was kept before
    own = _write_state(_tune(study), trials=2)
    restore_tune_state(study)  # whole: Tune's own may be newer than that copy
    assert tune_state_files(_tune(study)) == own
    _write_state(_tune(study), trials=2, truncate=True)
    restore_tune_state(study)
    assert "damaged" in capsys.readouterr().out and tune_state_files(_tune(study)) == old


def test_a_truncated_train_checkpoint_record_is_dropped_and_a_whole_one_kept(tmp_path):
    run = tmp_path / "train-abc"
    run.mkdir()
    record = run / "checkpoint_manager_snapshot.json"
    record.write_text('{"checkpoint_results": []}')
    drop_damaged_train_state(str(run))
    assert record.exists()
    record.write_bytes(b"")
    drop_damaged_train_state(str(run))
    assert not record.exists()
    drop_damaged_train_state(str(tmp_path / "never-started"))  # no folder: nothing to do
