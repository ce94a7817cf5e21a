"""The whole copy of Tune's state that lets --resume survive an upload cut off by a killed
driver, and a disk that filled mid-write."""

import json
import os
import pickle

from ltray.recovery import drop_damaged_train_state, restore_tune_state, snapshot_tune_state, tune_state_files


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


def test_a_whole_set_is_copied_with_its_manifest_and_a_truncated_one_is_not(tmp_path):
    staging, study = str(tmp_path / "staging"), str(tmp_path / "study")
    files = _write_state(staging)
    assert tune_state_files(staging) == files
    assert snapshot_tune_state(staging, study)
    good = os.path.join(_tune(study), "good")
    assert sorted(os.listdir(good)) == sorted([*files, "set.json"])
    _write_state(staging, stamp="2026-01-02_00-00-00", truncate=True)  # a newer set, truncated
    assert tune_state_files(staging) is None
    assert not snapshot_tune_state(staging, study)  # keeps the previous whole copy
    assert sorted(os.listdir(good)) == sorted([*files, "set.json"])
    newer = _write_state(staging, stamp="2026-01-03_00-00-00")  # a resumed session: its own names
    assert snapshot_tune_state(staging, study)
    assert sorted(os.listdir(good)) == sorted([*newer, "set.json"])


def test_a_torn_set_is_replaced_by_the_copy_and_the_same_set_is_left_alone(tmp_path, capsys):
    """The failure seen in CI: Tune's upload, cut off by the killed driver, left the trial count
    of a later save next to the trial list of an earlier one."""
    staging, study = str(tmp_path / "staging"), str(tmp_path / "study")
    saved = _write_state(staging, trials=2)
    snapshot_tune_state(staging, study)
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
    staging, study = str(tmp_path / "staging"), str(tmp_path / "study")
    saved = _write_state(staging)
    snapshot_tune_state(staging, study)
    _write_state(_tune(study), stamp="2025-12-31_00-00-00")  # an earlier session's set is dropped too
    _write_state(_tune(study), truncate=True)  # what ENOSPC mid-write leaves
    restore_tune_state(study)
    assert "damaged" in capsys.readouterr().out
    assert tune_state_files(_tune(study)) == saved
    assert sorted(n for n in os.listdir(_tune(study)) if n != "good") == sorted(saved)


def test_a_copy_cut_off_midway_is_not_used(tmp_path, capsys):
    staging, study = str(tmp_path / "staging"), str(tmp_path / "study")
    _write_state(staging)
    snapshot_tune_state(staging, study)
    own = _write_state(_tune(study), trials=5)
    newer = _write_state(staging, trials=4)
    path = os.path.join(_tune(study), "good", next(n for n in newer if n.startswith("searcher-state-")))
    with open(path, "wb") as f:  # the next copy wrote one file, then the driver died: no new manifest
        f.write(newer[os.path.basename(path)])
    restore_tune_state(study)
    assert capsys.readouterr().out == ""
    assert tune_state_files(_tune(study)) == own


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
