import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from ltray.core.metrics import balanced_accuracy
from ltray.data import DataConfig, load_data
from ltray.errors import LtrayError
from ltray.train import Recipe, TrainingDiverged, fit, load_checkpoint, lr_at

RECIPE = Recipe(epochs=30, batch_size=128, lr=0.1, warmup_epochs=5, weight_decay=5e-4)


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(name="digits-lt", rho=100))


def test_balanced_softmax_beats_ce_on_digits_lt(digits):
    ce = fit(digits, "ce", model="cnn-small", recipe=RECIPE, seed=0)
    bs = fit(digits, "balanced_softmax", model="cnn-small", recipe=RECIPE, seed=0)
    # recomputed from the returned logits, not trusted from the metrics dict
    ce_acc = balanced_accuracy(ce.test_logits, ce.test_labels, 10)
    bs_acc = balanced_accuracy(bs.test_logits, bs.test_labels, 10)
    assert ce_acc == pytest.approx(ce.metrics["test_bal_acc"])
    assert bs_acc > ce_acc + 0.05, (ce_acc, bs_acc)
    assert bs.metrics["test_few"] > ce.metrics["test_few"]
    # best epoch chosen on validation
    best = max(range(len(bs.history)), key=lambda i: bs.history[i]["val_bal_acc"])
    assert bs.best_epoch == bs.history[best]["epoch"]


def test_report_each_epoch_and_resume_is_exact(digits, tmp_path):
    recipe = Recipe(epochs=4, batch_size=64, lr=0.05, warmup_epochs=1)
    seen = []

    def report(metrics, ckpt):
        seen.append(metrics["epoch"])
        assert os.path.isfile(os.path.join(ckpt, "state.pt"))
        shutil.copytree(ckpt, tmp_path / f"ck{metrics['epoch']}")

    full = fit(digits, "ldam_drw", {"drw_frac": 0.5}, "cnn-small", recipe, seed=3, report=report)
    assert seen == [0, 1, 2, 3]
    resumed_epochs = []
    resumed = fit(digits, "ldam_drw", {"drw_frac": 0.5}, "cnn-small", recipe, seed=3,
                  report=lambda m, c: resumed_epochs.append(m["epoch"]), resume_from=str(tmp_path / "ck1"))
    assert resumed_epochs == [2, 3]  # not from epoch 0
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in full.history], rel=1e-5)
    np.testing.assert_allclose(resumed.test_logits, full.test_logits, rtol=1e-4, atol=1e-4)


def test_reports_and_checkpoints_are_spaced_in_time(digits, monkeypatch):
    """report_every_s / checkpoint_every_s on a fake clock: 1 s an epoch, reports >= 2 s apart,
    checkpoints >= 3 s apart, and the last epoch always reported with a checkpoint."""
    clock = iter(range(10**6))
    monkeypatch.setattr("ltray.train.time.monotonic", lambda: float(next(clock)))
    seen = []
    fit(digits, "ce", model="linear", recipe=Recipe(epochs=7, batch_size=256, lr=0.05, warmup_epochs=0), seed=0,
        report=lambda m, c: seen.append((m["epoch"], c is not None)), report_every_s=2, checkpoint_every_s=3)
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
    from ltray.train import _epoch_indices

    idx = _epoch_indices(digits.train.y.numpy(), Recipe(sampler="balanced"), np.random.default_rng(0))
    per = np.bincount(digits.train.y.numpy()[idx], minlength=10)
    assert per.min() > 0.5 * per.mean() and idx.size == len(digits.train)


def test_cli_trains_and_refuses_bad_input():
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    ok = subprocess.run([sys.executable, "-m", "ltray.train", "--epochs", "2", "--method", "lade"], capture_output=True,
                        text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "many" in ok.stdout and "few" in ok.stdout and "test" in ok.stdout
    for args, msg in ((["--data", "imagenet"], "unknown dataset"), (["--rho", "0.3"], "rho"),
                      (["--method", "focal"], "unknown method"), (["--model", "vit"], "unknown model"),
                      (["--hp", "tau=1"], "no hyperparameter"), (["--data", "cifar10-lt", "--root", "/nonexistent"], "download")):
        bad = subprocess.run([sys.executable, "-m", "ltray.train", *args], capture_output=True, text=True, env=env, timeout=300)
        assert bad.returncode == 2 and msg in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)
