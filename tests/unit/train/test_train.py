import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from ltray.core.metrics import balanced_accuracy
from ltray.datasets import DataConfig, load_data
from ltray.errors import LtrayError
from ltray.core.posthoc import tau_normalized_results
from ltray.methods import get_method
from ltray.train.ssp import pretrain_rotation
from ltray.config import Recipe
from ltray.train import (ModelStart, ReportClock, Reporting, TrainingDiverged, TrainState, fit, load_checkpoint, lr_at,
                         save_checkpoint)
from ltray.train.loop import Run, balanced_from, batches, build_run, epoch_indices

RECIPE = Recipe(epochs=30, batch_size=128, lr=0.1, warmup_epochs=5, weight_decay=5e-4)


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(name="digits-lt", rho=100))


def test_metrics_are_the_logits_of_the_epoch_selected_on_validation(digits):
    """What fit returns is recomputed from its own logits, at the best validation epoch. (Which
    method beats which is claimed on paired seeds in tests/test_methods_beat_ce.py, never here.)"""
    bs = fit(digits, "balanced_softmax", model="cnn-small", recipe=RECIPE, seed=0)
    assert balanced_accuracy(bs.test_logits, bs.test_labels, 10) == pytest.approx(bs.metrics["test_bal_acc"])
    assert balanced_accuracy(bs.val_logits, bs.val_labels, 10) == pytest.approx(bs.metrics["val_bal_acc"])
    best = max(range(len(bs.history)), key=lambda i: bs.history[i]["val_bal_acc"])
    assert bs.best_epoch == bs.history[best]["epoch"]
    assert bs.metrics["val_bal_acc"] == pytest.approx(bs.history[best]["val_bal_acc"])


def test_report_each_epoch_and_resume_is_exact(digits, tmp_path):
    recipe = Recipe(epochs=4, batch_size=64, lr=0.05, warmup_epochs=1)
    seen = []

    def report(metrics, ckpt):
        seen.append(metrics["epoch"])
        assert os.path.isfile(os.path.join(ckpt, "state.pt"))
        shutil.copytree(ckpt, tmp_path / f"ck{metrics['epoch']}")

    full = fit(digits, "ldam_drw", {"drw_frac": 0.5}, "cnn-small", recipe, seed=3, reporting=Reporting(report))
    assert seen == [0, 1, 2, 3]
    resumed_epochs = []
    resumed = fit(digits, "ldam_drw", {"drw_frac": 0.5}, ModelStart("cnn-small", resume_from=str(tmp_path / "ck1")),
                  recipe, seed=3, reporting=Reporting(lambda m, c: resumed_epochs.append(m["epoch"])))
    assert resumed_epochs == [2, 3]  # not from epoch 0
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in full.history], rel=1e-5)
    np.testing.assert_allclose(resumed.test_logits, full.test_logits, rtol=1e-4, atol=1e-4)


def test_reports_and_checkpoints_are_spaced_in_time(digits, monkeypatch):
    """report_every_s / checkpoint_every_s on a fake clock: 1 s an epoch, reports >= 2 s apart,
    checkpoints >= 3 s apart, and the last epoch always reported with a checkpoint."""
    clock = iter(range(10**6))
    monkeypatch.setattr("ltray.train.reporting.time.monotonic", lambda: float(next(clock)))
    seen = []
    fit(digits, "ce", model="linear", recipe=Recipe(epochs=7, batch_size=256, lr=0.05, warmup_epochs=0), seed=0,
        reporting=Reporting(lambda m, c: seen.append((m["epoch"], c is not None)), report_every_s=2, checkpoint_every_s=3))
    # the clock reads 0 at the start and once per epoch after: epoch e ends at time e + 1
    assert seen == [(1, False), (2, True), (4, False), (5, True), (6, True)]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_checkpoint_with_a_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "state.pt"
    with open(bad, "wb") as f:
        pickle.dump({"model": Payload()}, f)
    with pytest.raises(LtrayError, match="not an ltray checkpoint"):
        load_checkpoint(str(tmp_path))
    assert not marker.exists()
    (tmp_path / "state.pt").write_text("hello")
    with pytest.raises(LtrayError, match="not an ltray checkpoint"):
        load_checkpoint(str(bad))
    torch.save({"model": {}}, bad)
    with pytest.raises(LtrayError, match="missing"):
        load_checkpoint(str(bad))
    with pytest.raises(LtrayError, match="does not exist"):
        load_checkpoint(str(tmp_path / "nope"))


def test_absurd_learning_rate_is_reported_as_diverged(digits):
    with pytest.raises(TrainingDiverged, match="loss became"):
        fit(digits, "ce", model="cnn-small", recipe=Recipe(epochs=3, lr=1e30, warmup_epochs=0, weight_decay=0), seed=0)


def test_lr_schedule():
    r = Recipe(epochs=200, lr=0.1, warmup_epochs=5, milestones=(0.8, 0.9))
    assert lr_at(r, 0) == pytest.approx(0.02) and lr_at(r, 4) == pytest.approx(0.1)
    assert lr_at(r, 159) == pytest.approx(0.1) and lr_at(r, 160) == pytest.approx(0.01) and lr_at(r, 180) == pytest.approx(0.001)
    c = Recipe(epochs=10, lr=1.0, warmup_epochs=0, schedule="cosine")
    assert lr_at(c, 0) == pytest.approx(1.0) and lr_at(c, 5) == pytest.approx(0.5)
    for bad in (Recipe(epochs=0), Recipe(schedule="step"), Recipe(milestones=(1.5,)), Recipe(lr=-1), Recipe(sampler="x")):
        with pytest.raises(LtrayError):
            bad.validate()


def test_list_file_training_runs_through_the_loader(tmp_path):
    from helpers import make_list_dataset

    lists = make_list_dataset(tmp_path)
    data = load_data(DataConfig(name="list-file", root=str(tmp_path), image_size=16, **lists))
    res = fit(data, "balanced_softmax", model="resnet32", recipe=Recipe(epochs=1, batch_size=8, warmup_epochs=0,
                                                                        loader_workers=0), seed=0)
    assert res.test_logits.shape == (9, 3) and len(res.history) == 1


def test_gaussian_linear_model_trains():
    data = load_data(DataConfig(name="gaussian-lt", rho=10))
    res = fit(data, "logit_adjusted", model="linear", recipe=Recipe(epochs=2, batch_size=256, lr=0.1, warmup_epochs=0), seed=0)
    assert res.metrics["test_bal_acc"] > 0.8


def test_balanced_sampler_draws_classes_evenly(digits):
    idx = epoch_indices(digits.train.y.numpy(), Recipe(sampler="balanced"), np.random.default_rng(0))
    per = np.bincount(digits.train.y.numpy()[idx], minlength=10)
    assert per.min() > 0.5 * per.mean() and idx.size == len(digits.train)


@pytest.mark.slow  # a dozen fresh interpreters
def test_cli_trains_and_refuses_bad_input():
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    ok = subprocess.run([sys.executable, "-m", "ltray.train", "--epochs", "2", "--method", "lade"], capture_output=True,
                        text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "many" in ok.stdout and "few" in ok.stdout and "test" in ok.stdout
    for args, msg in ((["--data", "imagenet"], "unknown dataset"), (["--rho", "0.3"], "rho"),
                      (["--method", "arcface"], "unknown method"), (["--model", "vit"], "unknown model"),
                      (["--hp", "tau=1"], "no hyperparameter"), (["--data", "cifar10-lt", "--root", "/nonexistent"], "download")):
        bad = subprocess.run([sys.executable, "-m", "ltray.train", *args], capture_output=True, text=True, env=env, timeout=300)
        assert bad.returncode == 2 and msg in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)


def test_train_state_round_trips_through_a_checkpoint(digits, tmp_path):
    """TrainState writes the checkpoint keys load_checkpoint checks, in their usual order, and a
    fresh run restored from it goes on with the next epoch."""
    run, state = build_run(digits, get_method("ce"), {}, Recipe(epochs=3), ModelStart("linear"), torch.device("cpu"))
    state.record({"epoch": 0, "val_bal_acc": 0.5, "train_loss": 1.0})
    save_checkpoint(str(tmp_path), state.to_checkpoint())
    ck = load_checkpoint(str(tmp_path))
    assert tuple(ck) == TrainState.KEYS and ck["epoch"] == 0 and ck["best_epoch"] == 0 and ck["best_val"] == 0.5
    _, resumed = build_run(digits, get_method("ce"), {}, Recipe(epochs=3), ModelStart("linear", resume_from=str(tmp_path)),
                           torch.device("cpu"))
    assert resumed.epoch == 1 and resumed.history == state.history
    torch.testing.assert_close(resumed.net.state_dict(), state.net.state_dict())
    resumed.record({"epoch": 1, "val_bal_acc": float("nan"), "train_loss": 1.0})  # NaN is never the best
    assert resumed.best_epoch == 0 and len(resumed.history) == 2


def test_batches_shard_each_global_batch_and_keep_ranks_in_step(digits):
    """Rank 1 of 2 takes every other image of each global batch of 4; a last global batch of one
    image gives rank 1 that image too, so both ranks take the same number of steps."""
    net = torch.nn.Linear(1, 1)
    run = Run(net=net, train_net=net, loss_fn=None, opt=None, recipe=Recipe(batch_size=4, augment=False),
              device=torch.device("cpu"), x_train=digits.train.x, y_train=digits.train.y, rank=1, world=2)
    order = np.array([5, 6, 7, 8, 9], dtype=np.int64)
    got = [yb.tolist() for _, yb in batches(digits, run, order, torch.Generator().manual_seed(0))]
    y = digits.train.y
    assert got == [[int(y[6]), int(y[8])], [int(y[9])]]


def test_report_clock_spaces_reports_and_checkpoints(monkeypatch):
    clock = iter([0.0, 1.0, 2.5, 3.0, 4.0])
    monkeypatch.setattr("ltray.train.reporting.time.monotonic", lambda: next(clock))
    c = ReportClock(report_every_s=2, checkpoint_every_s=3, epochs=4, device=torch.device("cpu"))
    # (report, with a checkpoint) at t = 1, 2.5, 3 and the last epoch at t = 4
    assert [c.tick(e) for e in range(4)] == [(False, False), (True, False), (True, True), (True, True)]


def test_tau_normalized_results_pick_tau_on_validation():
    """Class 0's weight is 4x longer: the first image of class 1 goes to class 1 only once
    4^(1 - tau) < 2, i.e. tau > 0.5, so tau* is the first grid point past 0.5 (ties keep the
    smallest tau)."""
    w = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
    feats = np.array([[1.0, 2.0], [1.0, 3.0], [2.0, 1.0]], np.float32)  # classes 1, 1, 0
    y = np.array([1, 1, 0])
    res = tau_normalized_results({"val": feats, "test": feats}, {"val": y, "test": y}, w, 2)
    assert res["tau_star"] == pytest.approx(0.6) and res["val_bal_acc"] == res["test_bal_acc_tau1"] == 1.0


def test_rotation_pretraining_learns_and_names_itself_when_it_diverges(digits):
    recipe = Recipe(epochs=2, batch_size=128, lr=0.05, warmup_epochs=0)
    state, history = pretrain_rotation(digits, "cnn-small", recipe, seed=0)
    assert [h["epoch"] for h in history] == [0, 1] and history[1]["rotation_loss"] < np.log(4)
    assert set(state) and all(not k.startswith("head.") for k in state)
    with pytest.raises(TrainingDiverged, match="rotation pre-training: loss became"):
        pretrain_rotation(digits, "cnn-small", Recipe(epochs=1, lr=1e30, warmup_epochs=0, weight_decay=0))


def test_deferred_resampling_switches_to_class_balanced_batches(digits):
    r = Recipe(epochs=10, resample_from=0.8)
    assert balanced_from(r) == 8 and balanced_from(Recipe(sampler="balanced")) == 0
    assert balanced_from(Recipe(epochs=10)) == 10
    labels = digits.train.y.numpy()
    before = epoch_indices(labels, r, np.random.default_rng(0), epoch=7)
    after = epoch_indices(labels, r, np.random.default_rng(0), epoch=8)
    assert sorted(before.tolist()) == list(range(labels.size))  # a permutation: instance-balanced
    per = np.bincount(labels[after], minlength=10)
    assert per.min() > 0.5 * per.mean()  # class-balanced: the rare classes drawn as often as the head


def test_cli_starts_from_an_experiment_file_and_takes_any_field(capsys):
    """`--experiment` trains with the study's own recipe (the quickstart's weight decay 5e-4, not
    the Recipe default), and `--set` reaches every field, as the sweep's does."""
    from ltray.config import load_experiment
    from ltray.train.__main__ import main

    quick = load_experiment("experiments/quickstart.py")
    assert main(["--experiment", "experiments/quickstart.py", "--method", "ce", "--epochs", "1"]) == 0
    assert f"weight decay {quick.train.weight_decay:g}" in capsys.readouterr().out
    assert main(["--method", "ce", "--epochs", "1", "--set", "train.weight_decay=0.001", "train.lr=0.05"]) == 0
    assert "lr 0.05, weight decay 0.001" in capsys.readouterr().out
    assert main(["--method", "ce", "--set", "train.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err
