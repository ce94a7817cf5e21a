"""The copy of Tune's state files that lets --resume survive a disk that filled mid-write."""

import json
import os
import pickle

from ltray.recovery import backup_tune_state, drop_damaged_train_state, repair_tune_state, tune_state_files


def _write_state(folder, stamp="2026-01-01_00-00-00", truncate=False):
    os.makedirs(folder, exist_ok=True)
    state = json.dumps({"trial_data": [["x" * 100, "y"]], "runner_data": {"n": 3}}).encode()
    files = {f"experiment_state-{stamp}.json": state[:40] if truncate else state,
             f"search_gen_state-{stamp}.json": pickle.dumps({"counter": 3}),  # a pickle despite the name
             f"searcher-state-{stamp}.pkl": pickle.dumps({"ot_trials": [1, 2]})}
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return files


def test_a_whole_state_is_copied_and_a_truncated_one_is_not(tmp_path):
    tune = str(tmp_path / "tune")
    files = _write_state(tune)
    assert set(map(os.path.basename, tune_state_files(tune).values())) == set(files)
    backup_tune_state(tune)
    assert sorted(os.listdir(tmp_path / "tune" / "good")) == sorted(files)
    _write_state(tune, stamp="2026-01-02_00-00-00", truncate=True)  # a newer set, truncated
    assert tune_state_files(tune) is None
    backup_tune_state(tune)  # keeps the previous whole copy
    assert sorted(os.listdir(tmp_path / "tune" / "good")) == sorted(files)


def test_a_truncated_state_is_replaced_by_the_copy_and_a_whole_one_is_left_alone(tmp_path, capsys):
    tune = str(tmp_path / "tune")
    good = _write_state(tune)
    backup_tune_state(tune)
    repair_tune_state(tune)  # whole: nothing to do
    assert capsys.readouterr().out == ""
    for name in os.listdir(tune):
        if name.startswith("experiment_state-"):
            with open(os.path.join(tune, name), "r+b") as f:
                f.truncate(10)  # what ENOSPC mid-write leaves
    repair_tune_state(tune)
    assert "damaged" in capsys.readouterr().out
    restored = tune_state_files(tune)
    assert restored is not None and set(map(os.path.basename, restored.values())) == set(good)
    name = next(n for n in good if n.startswith("experiment_state-"))
    assert open(os.path.join(tune, name), "rb").read() == good[name]


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
