"""search.per_method: every method gets exactly its budget of distinct configurations (its
published defaults first, then its own Optuna study), a method whose space holds fewer runs what
it has, a resumed run asks only for what is missing, and shared recipe knobs reach the recipe.
The study's searcher is driven as Tune drives it (suggest, then on_trial_complete), without Ray
running; real journal files and a real optuna.db."""

import dataclasses
from collections import Counter

import optuna
import pytest

from ltray.config import Experiment, Recipe, SearchConfig, resolve_trial, validate
from ltray.errors import LtrayError
from ltray.methods.space import capacity
from ltray.sweep import journal, spaces
from ltray.sweep.outcomes import mark_ended
from ltray.sweep.reconcile import prepare_search
from ltray.sweep.searcher import StudySearch

SHARED = ("train.weight_decay",)
RANGES = {"train.weight_decay": (1e-5, 1e-2), "crt.epochs": (9, 10)}


def _exp(per_method=3, shared=(), sampler="tpe", repeats=2, methods=("ce", "logit_adjusted", "crt")) -> Experiment:
    return Experiment(name="pm", methods=methods, repeats=repeats,
                      search=SearchConfig(per_method=per_method, shared=shared, ranges=dict(RANGES), sampler=sampler))


def _drive(exp, study_dir, resume=False, stop_after=None) -> list[dict]:
    """Tune's loop over the searcher: suggest until FINISHED, each trial completed at once with a
    made-up validation accuracy. ``stop_after``: a run cut off after that many trials."""
    searcher = StudySearch(exp, study_dir, prepare_search(exp, study_dir, resume=resume))
    configs, n = [], 0
    while stop_after is None or n < stop_after:
        config = searcher.suggest(f"t{resume:d}{n:03d}")
        if config is None or config == StudySearch.FINISHED:
            break
        configs.append(config)
        result = {"val_bal_acc": 0.5 + 0.01 * (n % 7)}
        searcher.on_trial_complete(f"t{resume:d}{n:03d}", result)
        mark_ended(study_dir, config["__trial_id__"], "complete", result=result, config=config)  # Tune's callback

        n += 1
    return configs


def _distinct(configs) -> Counter:
    return Counter(c["method"] for c in {tuple(sorted((k, v) for k, v in c.items() if not k.startswith("__"))): c
                                         for c in configs}.values())


def test_each_method_gets_exactly_its_budget_defaults_first_each_on_every_repeat(tmp_path):
    exp = _exp()
    configs = _drive(exp, str(tmp_path / "pm"))
    # ce has no knob: one configuration; crt's epochs in [9, 10]: two; logit_adjusted: three
    assert spaces.quota(exp) == {"ce": 1, "logit_adjusted": 3, "crt": 2}
    assert _distinct(configs) == Counter({"ce": 1, "logit_adjusted": 3, "crt": 2})
    assert len(configs) == 6 * exp.repeats
    firsts = {c["method"]: c for c in reversed(configs) if c["__config_index__"] == 0}
    assert firsts["logit_adjusted"]["logit_adjusted.tau"] == 1.0 and firsts["crt"]["crt.epochs"] == 10
    indexes = {m: sorted({c["__config_index__"] for c in configs if c["method"] == m}) for m in exp.methods}
    assert indexes == {"ce": [0], "logit_adjusted": [0, 1, 2], "crt": [0, 1]}
    storage = f"sqlite:///{tmp_path / 'pm' / 'optuna.db'}"
    names = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    assert set(names) == {"pm.ce", "pm.logit_adjusted", "pm.crt"}  # each method sees only its own trials
    done = {n: sum(t.state == optuna.trial.TrialState.COMPLETE for t in optuna.load_study(study_name=n,
                                                                                         storage=storage).trials)
            for n in names}
    assert done == {"pm.ce": 1, "pm.logit_adjusted": 3, "pm.crt": 2}


def test_methods_are_asked_in_turn(tmp_path):
    configs = _drive(_exp(repeats=1), str(tmp_path / "pm"))
    assert [c["method"] for c in configs][:3] == ["ce", "logit_adjusted", "crt"]  # every method's defaults first
    assert [c["method"] for c in configs][3:] == ["logit_adjusted", "crt", "logit_adjusted"]


@pytest.mark.parametrize("cut", [1, 5, 9])
def test_a_resumed_run_asks_only_for_what_is_missing(tmp_path, cut):
    exp, study = _exp(), str(tmp_path / "pm")
    first = _drive(exp, study, stop_after=cut)
    rest = _drive(exp, study, resume=True)
    # every configuration's repeats: a cut-off configuration's second repeat trains in the resumed run
    assert _distinct(first + rest) == Counter({"ce": 1, "logit_adjusted": 3, "crt": 2})
    assert len(first) + len(rest) == 12
    assert Counter(c.method for c in journal.read_all(study)) == Counter({"ce": 1, "logit_adjusted": 3, "crt": 2})


def test_shared_knobs_are_knobs_of_every_method_and_reach_the_recipe(tmp_path):
    exp = _exp(per_method=3, shared=SHARED, repeats=1)
    validate(dataclasses.replace(exp, data=dataclasses.replace(exp.data)))
    configs = _drive(exp, str(tmp_path / "pm"))
    assert _distinct(configs) == Counter({"ce": 3, "logit_adjusted": 3, "crt": 3})  # a float knob for all now
    assert all("train.weight_decay" in c for c in configs)
    defaults = [c for c in configs if c["__config_index__"] == 0]
    assert {c["train.weight_decay"] for c in defaults} == {exp.train.weight_decay}  # the study's recipe value
    tuned = next(c for c in configs if c["method"] == "logit_adjusted" and c["__config_index__"] == 2)
    plan = resolve_trial(exp, "logit_adjusted", {"tau": tuned["logit_adjusted.tau"],
                                                 "train.weight_decay": tuned["train.weight_decay"]})
    assert plan.recipe.weight_decay == tuned["train.weight_decay"] and "train.weight_decay" not in plan.hp


def test_the_random_sampler_and_one_search_over_all_methods_still_work(tmp_path):
    assert _distinct(_drive(_exp(sampler="random", repeats=1), str(tmp_path / "r"))) == \
        Counter({"ce": 1, "logit_adjusted": 3, "crt": 2})
    joint = dataclasses.replace(_exp(repeats=1), search=SearchConfig(num_samples=5))
    assert len(_drive(joint, str(tmp_path / "j"))) == 5


def test_capacity_counts_whole_number_spaces():
    assert capacity("ce") == 1 and capacity("crt", {"crt.epochs": (9, 10)}) == 2
    assert capacity("logit_adjusted") == float("inf")


@pytest.mark.parametrize("search,message", [
    (SearchConfig(shared=("train.weight_decay",)), "without a range"),
    (SearchConfig(shared=("train.sampler",), ranges={"train.sampler": (0, 1)}), "numeric recipe field"),
    (SearchConfig(shared=("weight_decay",)), "numeric recipe field"),
    (SearchConfig(ranges={"train.lr": (0.01, 1.0)}), "add 'train.lr' to search.shared"),
    (SearchConfig(shared=("train.lr",), ranges={"train.lr": (0.5, 1.0)}), "excludes the study's train.lr"),
    (SearchConfig(shared=("train.weight_decay",), ranges={"train.weight_decay": (-1.0, 1.0)}), "recipe refuses"),
    (SearchConfig(shared=("train.epochs",), ranges={"train.epochs": (1.5, 30)}), "whole numbers"),
    (SearchConfig(per_method=-1), "search.per_method"),
])
def test_bad_shared_knobs_and_budgets_are_refused_before_anything_runs(search, message):
    with pytest.raises(LtrayError, match=message):
        validate(Experiment(methods=("ce",), search=search, train=Recipe(lr=0.1)))


def test_a_shared_knob_set_per_method_too_is_refused():
    exp = Experiment(methods=("ce",), recipe_overrides={"ce.weight_decay": 1e-3},
                     search=SearchConfig(shared=SHARED, ranges={"train.weight_decay": (1e-5, 1e-2)}))
    with pytest.raises(LtrayError, match="recipe_overrides also sets"):
        validate(exp)


def test_a_method_that_proposes_only_what_it_has_stops_with_what_it_has(tmp_path, monkeypatch, capsys):
    real = spaces.quota
    monkeypatch.setattr(spaces, "quota", lambda exp: {**real(exp), "crt": 3})  # more than its 2 configurations
    configs = _drive(_exp(repeats=1), str(tmp_path / "pm"))
    assert _distinct(configs) == Counter({"ce": 1, "logit_adjusted": 3, "crt": 2})
    assert "crt proposed only configurations it has after 20 tries; it stops at 2" in capsys.readouterr().out
    study = optuna.load_study(study_name="pm.crt", storage=f"sqlite:///{tmp_path / 'pm' / 'optuna.db'}")
    repicks = [t for t in study.trials if "same_as" in t.user_attrs]
    assert len(repicks) >= 20 and all(t.state == optuna.trial.TrialState.FAIL for t in repicks)
