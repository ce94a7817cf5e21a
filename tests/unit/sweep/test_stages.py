"""A shared stage (DiVE's teacher) is trained once per study, even when trials race for it."""

import dataclasses
import multiprocessing as mp

import pytest
import torch

from ltray import results as R
from ltray.datasets import load_data
from ltray.config import Experiment, validate
from ltray.sweep.stages import StagePlan, get_pretrained, get_trained, stage_key
from ltray.config import Recipe
from ltray.train import ModelStart, fit, load_checkpoint

EXP = Experiment(name="s", train=Recipe(epochs=2, warmup_epochs=1))


def _plan(study_dir, exp=EXP):
    return StagePlan.build(exp, str(study_dir), exp.data)


def _worker(study_dir, trial_id, q):
    data = load_data(EXP.data)
    net, key = get_trained(_plan(study_dir), data, "balanced_softmax", 0, "cpu", trial_id)
    q.put((key, sum(float(p.sum()) for p in net.parameters())))


def test_teacher_is_trained_once_for_racing_trials(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), f"trial{i}", q)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    got = [q.get() for _ in procs]
    assert len({k for k, _ in got}) == 1 and len({round(s, 4) for _, s in got}) == 1  # same weights
    stages = R.load_study(str(tmp_path), ("stages",))["stages"].to_pylist()
    assert len(stages) == 1 and stages[0]["trained_by"] in {"trial0", "trial1", "trial2"}


def test_stage_key_depends_on_content(tmp_path):
    plan = _plan(tmp_path)
    a = stage_key("teacher", "balanced_softmax", plan, EXP.train, "h0", 0)
    assert a == stage_key("teacher", "balanced_softmax", plan, EXP.train, "h0", 0)
    assert a != stage_key("teacher", "balanced_softmax", plan, EXP.train, "h0", 1)
    assert a != stage_key("teacher", "balanced_softmax", plan, EXP.train, "h1", 0)  # another subset
    assert a != stage_key("teacher", "balanced_softmax", plan, Recipe(epochs=3), "h0", 0)


def test_a_shared_stage_trains_with_its_methods_recipe_overrides(tmp_path):
    """cRT's CE backbone is a stage: ``recipe_overrides`` for ce reach it (and its key)."""
    exp = dataclasses.replace(EXP, methods=("crt",), recipe_overrides={"ce.epochs": 1.0, "ce.warmup_epochs": 0.0})
    validate(exp)  # an override for the stage's method (not among methods) is accepted
    data = load_data(exp.data)
    _, key = get_trained(_plan(tmp_path, exp), data, "ce", 0, "cpu", "t")
    _, plain = get_trained(_plan(tmp_path), data, "ce", 0, "cpu", "t")
    assert key != plain
    stages = {s["key"]: s for s in R.load_study(str(tmp_path), ("stages",))["stages"].to_pylist()}
    history = {k: load_checkpoint(tmp_path / "stages" / k)["history"] for k in stages}
    assert len(history[key]) == 1 and len(history[plain]) == EXP.train.epochs


def test_dive_student_trains_from_the_teacher(tmp_path):
    data = load_data(EXP.data)
    teacher, _ = get_trained(_plan(tmp_path), data, "balanced_softmax", 0, "cpu", "t")
    res = fit(data, "dive", {"tau": 3.0, "power": 0.5, "a": 0.5}, ModelStart(teacher=teacher), EXP.train)
    assert res.test_logits.shape == (400, 10) and all(torch.isfinite(torch.tensor(h["train_loss"])) for h in res.history)


def test_rotation_pretraining_is_one_stage_that_every_trial_starts_from(tmp_path):
    from ltray.models import build_model

    exp = dataclasses.replace(EXP, pretrain="rotation", train=Recipe(epochs=1, warmup_epochs=0))
    data = load_data(exp.data)
    a = get_pretrained(_plan(tmp_path, exp), data, 0, "cpu", "trial0")
    b = get_pretrained(_plan(tmp_path, exp), data, 0, "cpu", "trial1")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    stages = R.load_study(str(tmp_path), ("stages",))["stages"].to_pylist()
    assert [(s["kind"], s["trained_by"]) for s in stages] == [("rotation", "trial0")]
    net = build_model("cnn-small", 10, 1)
    fresh = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    net.backbone.load_state_dict(a)
    assert any(not torch.equal(fresh[k], a[k]) for k in a if a[k].is_floating_point())  # it learned something
    assert get_pretrained(_plan(tmp_path), data, 0, "cpu", "t") is None  # no pre-training asked


def test_lws_keeps_the_ce_classifier_frozen_and_learns_only_per_class_scales(tmp_path):
    """LWS's logits are f_c (w_c . x + b_c) with w, b and the backbone exactly the CE stage's."""
    from ltray.methods import get_method
    from ltray.sweep.trial import TrialSpec, stage_inputs

    exp = dataclasses.replace(EXP, methods=("lws",))
    data = load_data(exp.data)
    spec = TrialSpec.build(exp, str(tmp_path), "t", "lws", {"epochs": 2}, 0)
    start, _ = stage_inputs(spec, data, "cpu")
    base, _ = get_trained(_plan(tmp_path, exp), data, "ce", 0, "cpu", "t")
    res = fit(data, get_method("lws"), {"epochs": 2}, ModelStart(**start), spec.recipe)
    state = res.state_dict
    assert torch.equal(state["head.linear.weight"], base.head.weight.detach())
    assert torch.equal(state["head.linear.bias"], base.head.bias.detach())
    assert all(torch.equal(state[f"backbone.{k}"], v) for k, v in base.backbone.state_dict().items())
    assert not torch.equal(state["head.scale"], torch.ones(10))  # the scales learned
    x = torch.randn(3, 1, 8, 8)
    from ltray.models import build_model

    net = build_model("cnn-small", 10, 1, head="lws")
    net.load_state_dict(state)
    net.eval()
    want = (base.features(x) @ base.head.weight.T + base.head.bias) * state["head.scale"]
    assert torch.allclose(net(x), want, atol=1e-5)


def test_weight_balancing_starts_from_stage_one_and_keeps_rows_inside_its_radius(tmp_path):
    """Stage 1 trains CE with weight decay 5e-3 once; stage 2 starts from its classifier, sets
    MaxNorm's radius from that classifier's row norms (min + 0.1 (max - min)) and ends with every
    class weight row inside it."""
    from ltray.config import resolve_trial
    from ltray.methods import get_method
    from ltray.sweep.trial import TrialSpec, stage_inputs

    exp = dataclasses.replace(EXP, methods=("wb",))
    assert resolve_trial(exp, "ce_wd").recipe.weight_decay == 5e-3
    assert resolve_trial(exp, "wb").recipe.weight_decay == 0.1  # the authors' stage-2 decay
    data = load_data(exp.data)
    spec = TrialSpec.build(exp, str(tmp_path), "t", "wb", {"epochs": 2}, 0)
    start, _ = stage_inputs(spec, data, "cpu")
    base, _ = get_trained(_plan(tmp_path, exp), data, "ce_wd", 0, "cpu", "t")
    assert torch.equal(start["init_head"]["weight"], base.head.weight.detach())
    res = fit(data, get_method("wb"), {"epochs": 2}, ModelStart(**start), spec.recipe)
    first = base.head.weight.detach().norm(dim=1)
    radius = float(first.min() + 0.1 * (first.max() - first.min()))
    assert res.state_dict["head.max_norm_radius"].item() == pytest.approx(radius, rel=1e-5)
    assert (res.state_dict["head.weight"].norm(dim=1) <= radius * (1 + 1e-5)).all()