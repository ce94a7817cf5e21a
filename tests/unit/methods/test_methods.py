"""Every registered method goes through the same checks the moment it is registered."""

import numpy as np
import optuna
import pytest
import torch

from ltray.core.posthoc import pc_adjust
from ltray.methods import get_method, method_names
from ltray.models import build_model

COUNTS = torch.tensor([60.0, 25.0, 9.0, 3.0, 1.0])


@pytest.mark.parametrize("name", method_names())
def test_method_trains_a_step_with_finite_loss_and_gradients(name):
    m = get_method(name)
    hp = m.hp()
    torch.manual_seed(0)
    net = build_model("cnn-small", 5, in_channels=1, head=m.head, experts=m.experts(hp))
    x = torch.randn(12, 1, 8, 8)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 0])
    teacher = build_model("cnn-small", 5, in_channels=1, head=get_method(m.teacher).head) if m.teacher else None
    loss_fn = m.make_loss(COUNTS, 10, hp, teacher)
    for epoch in (0, 9):  # before and after any deferred switch (DRW)
        net.zero_grad()
        loss = loss_fn(net(x), y, epoch, x)
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0
    out = net.eval()(x).detach() * m.logit_scale(hp)  # a multi-expert model's mean in eval mode
    prior = (COUNTS / COUNTS.sum()).numpy()
    adj = pc_adjust(out, np.full(5, 0.2) if m.balanced_logits else prior, np.full(5, 0.2))
    assert adj.shape == out.shape


@pytest.mark.parametrize("name", method_names())
def test_method_search_space_samples_with_a_fixed_trial(name):
    m = get_method(name)
    trial = optuna.trial.FixedTrial(m.hp())
    sampled = m.space(trial)
    assert set(sampled) <= set(m.defaults)
    assert m.hp(sampled) == {**m.defaults, **sampled}
    # and a real sampler stays within the declared knobs
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    t = study.ask()
    assert set(m.space(t)) <= set(m.defaults)


def test_unknown_method_and_hyperparameter():
    from ltray.errors import LtrayError

    with pytest.raises(LtrayError, match="unknown method"):
        get_method("arcface")
    with pytest.raises(LtrayError, match="no hyperparameter"):
        get_method("ce").hp({"tau": 1.0})


@pytest.mark.parametrize("name", method_names())
def test_method_runs_one_epoch_through_a_whole_trial(name, tmp_path):
    """Registry-wide, for real: the trial body (shared stages included: DiVE's teacher, cRT's
    backbone) trains one epoch of every method on digits-lt and writes a completed row whose
    numbers are finite and whose selected epoch is the one trained."""
    from ltray import results as R
    from ltray.config import Experiment, resolve_trial
    from ltray.config import Recipe
    from ltray.sweep.trial import LocalApi, TrialSpec, train_trial

    exp = Experiment(name="one", methods=(name,), train=Recipe(epochs=1, warmup_epochs=0, batch_size=64))
    api = LocalApi()
    train_trial(TrialSpec.build(exp, str(tmp_path), "t", name, {}, 0), api, 0, 0)
    (row,) = R.load_study(str(tmp_path), ("trials",))["trials"].to_pylist()
    epochs = resolve_trial(exp, name).recipe.epochs
    assert row["status"] == "completed" and row["epochs_run"] == epochs and 0 <= row["best_epoch"] < epochs
    assert all(np.isfinite(row[k]) for k in ("val_bal_acc", "test_bal_acc", "tau_star", "test_bal_acc_posthoc",
                                            "test_ece", "test_ece_ts"))
    assert row["temperature"] > 0 and 0 <= row["test_ece"] <= 1
    assert api.reports[-1]["val_bal_acc"] == row["val_bal_acc"]
