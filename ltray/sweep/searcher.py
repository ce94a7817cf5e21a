"""The study's searcher: a Ray Tune ``Searcher`` over the study's Optuna studies (TPE for one
objective, NSGA-II for two; each method first at its published defaults), which runs every
configuration on every repeat and keeps the search journal. One Optuna study picks the method
and its knobs; with ``search.per_method`` each method has its own (``ltray.sweep.spaces``),
asked in turn (the method with the fewest configurations next), each seeing only its own trials.

Tune asks it for one trial at a time. It hands out, in order: the repeats the run's plan says
must train (a repeat the journal names a trial for keeps that trial's id: it goes on from its
checkpoint), then new configurations, each asked of Optuna (define-by-run) and recorded in the
journal before any of its trials runs. A per-method study that proposes a configuration its
method has already (a whole-number knob) is told FAIL for it and asked again, up to ``REPICKS``
times; then that method stops with what it has. When every repeat of a configuration has a final outcome
it tells Optuna once: per objective, the mean over the repeats with a value (what Tune's
``Repeater`` told before), FAIL when none has one; a configuration Optuna already knows
finished is not told again. Nothing here is restored from Tune's saved state: a run's searcher
is rebuilt from the journal and the rows (``ltray.sweep.reconcile``).
"""

from __future__ import annotations

import pickle
import sqlite3
from collections import Counter

import optuna
from ray.tune.search import Searcher

from ltray import results as R
from ltray.config import Experiment
from ltray.methods.space import split_config
from ltray.results import search_storage
from ltray.results.storage import shown
from ltray.sweep import faults, journal, spaces
from ltray.sweep.journal import Configuration
from ltray.sweep.plan import StudyState, is_final, knob_key, values_of
from ltray.sweep.reconcile import SearchSetup, tell, user_attrs

REPICKS = 20  # proposals of configurations a method has already, before it stops with what it has

class StudySearch(Searcher):
    """Tune's searcher of one run of a study (see the module docstring)."""

    def __init__(self, exp: Experiment, study_dir: str, setup: SearchSetup):
        two = len(exp.search.objectives) == 2
        super().__init__(metric=list(exp.search.objectives) if two else exp.search.objectives[0],
                         mode=["max", "max"] if two else "max")
        self.exp, self.study_dir = exp, study_dir
        self.configurations = {c.key: c for c in setup.configurations}
        self.queue = [(c.key, r) for c, r in setup.plan.work]  # keys: picklable, and one object per configuration
        # new configurations to ask for, per method ("": any, one Optuna study picking the method)
        self.new_of = dict(setup.plan.new_of) if setup.plan.new_of else {"": setup.plan.new}
        self.filling: str | None = None  # a new configuration whose repeats are still being handed out
        self.running: dict[str, tuple[str, int]] = {}  # Tune trial id -> (configuration, repeat)
        self.ended: dict[str, dict] = {}  # ltray trial id -> how it ended in this run
        self._studies: dict[str, optuna.Study] = {}
        self._storage = None

    def __getstate__(self):  # Tune pickles its searcher with the study; Optuna's handles reopen lazily
        return {**self.__dict__, "_studies": {}, "_storage": None}

    # ------------------------------------------------------------------ Tune's interface

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the space is the study's own

    def suggest(self, trial_id: str) -> dict | None:
        """The config of Tune's next trial: a planned repeat, the next repeat of the configuration
        being filled, or a new configuration; FINISHED when the run's budget is spent."""
        if self.queue:
            key, repeat = self.queue.pop(0)
            return self._hand_out(self.configurations[key], repeat, trial_id)
        c = self.configurations.get(self.filling) if self.filling else None
        if c is not None and len(c.trials) < self.exp.repeats:
            return self._hand_out(c, len(c.trials), trial_id)
        c = self._next_new(trial_id)
        if c is None:
            return Searcher.FINISHED
        self.filling = c.key
        return self._hand_out(c, 0, trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Record how the trial ended; tell Optuna once its configuration is final."""
        if trial_id not in self.running:
            return
        key, repeat = self.running.pop(trial_id)
        c = self.configurations[key]
        self.ended[c.trials[repeat]] = {"how": "error" if error else "complete", "result": result or {}}
        state = self._state_of(c)
        if is_final(c, state, self.exp.repeats):
            tell(self._optuna(self._study_name(c)), self._storage, c.number,
                 values_of(c, state, self.exp.search.objectives))
            self._publish()

    def save(self, checkpoint_path: str) -> None:
        """Tune saves its searcher with its own state; ltray never restores it (a run starts from
        the journal and the rows), so what is saved only says so."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"ltray": "the search journal and the rows are the state; see ltray.sweep.reconcile"}, f)

    def restore(self, checkpoint_path: str) -> None:
        pass

    # ------------------------------------------------------------------ the work

    def _hand_out(self, c: Configuration, repeat: int, tune_id: str) -> dict:
        """The config of ``c``'s ``repeat``; a repeat without a trial yet takes Tune's id."""
        if repeat >= len(c.trials) or not c.trials[repeat]:
            c.trials += [""] * (repeat + 1 - len(c.trials))
            c.trials[repeat] = tune_id
            journal.write(self.study_dir, c)  # before the trial runs: a kill from here on reruns it
            self._optuna(self._study_name(c))
            key = self._trial_key(self._study_name(c), c.number)
            for name in ("trial_ids", "seeds"):
                self._storage.set_trial_user_attr(key, name, user_attrs(c, self.exp.seed)[name])
        self.running[tune_id] = (c.key, repeat)
        return c.config(repeat)

    def _next_new(self, tune_id: str) -> Configuration | None:
        """A new configuration: of the method with the fewest so far that still has budget (per
        method), or of whichever method the one study picks; None when the budget is spent."""
        while True:
            left = [m for m in (self.exp.methods if "" not in self.new_of else ("",)) if self.new_of.get(m, 0) > 0]
            if not left:
                return None
            have = Counter(c.method for c in self.configurations.values())
            method = min(left, key=lambda m: have[m])  # ties: the experiment's order
            c = self._ask(tune_id, method)
            if c is not None:
                self.new_of[method] -= 1
                return c
            print(f"search: {method} proposed only configurations it has after {REPICKS} tries; it stops at "
                  f"{have[method]} distinct configurations", flush=True)
            self.new_of[method] = 0

    def _ask(self, tune_id: str, method: str) -> Configuration | None:
        """A new configuration from Optuna (a queued default first), recorded in the journal; of
        ``method`` ("": any) in its own study. None when that study re-proposes only what it has."""
        name = spaces.study_of(self.exp, method) if method else self.exp.name
        study = self._optuna(name)
        have = {knob_key(c.hp) for c in self.configurations.values() if c.method == method}
        for _ in range(REPICKS if method else 1):
            ot = study.ask()
            spaces.space_of(self.exp, name)(ot)
            m, hp = split_config({"method": method, **ot.params})
            if method and knob_key(hp) in have:  # a whole-number space proposing a configuration it has
                ot.set_user_attr("same_as", next(c.key for c in self.configurations.values()
                                                  if c.method == m and knob_key(c.hp) == knob_key(hp)))
                study.tell(ot.number, state=optuna.trial.TrialState.FAIL)
                continue
            faults.pause_point("asked")
            index = sum(c.method == m for c in self.configurations.values())
            c = Configuration(key=tune_id, method=m, hp=hp, trials=[], number=ot.number,
                              study="" if name == self.exp.name else name, index=index)
            self.configurations[c.key] = c
            for k, v in user_attrs(c, self.exp.seed).items():
                ot.set_user_attr(k, v)
            self._publish()
            return c
        return None

    def _state_of(self, c: Configuration) -> StudyState:
        """How the configuration's trials stand: their rows, and how those of this run ended."""
        ids = [t for t in c.trials if t]
        rows = R.load_study(self.study_dir, ("trials",), trial_ids=ids)["trials"].to_pylist()
        return StudyState(rows={r["trial_id"]: r for r in rows}, ended={t: self.ended[t] for t in ids if t in self.ended},
                          claimed={})

    def _study_name(self, c: Configuration) -> str:
        return c.study or self.exp.name

    def _optuna(self, name: str) -> optuna.Study:
        if name not in self._studies:
            if self._storage is None:
                self._storage = search_storage.open_storage(self.exp.search.storage, self.study_dir, resume=True)
            self._studies[name] = optuna.load_study(study_name=name, storage=self._storage,
                                                    sampler=sampler_of(self.exp, name))
        return self._studies[name]

    def _trial_key(self, name: str, number: int) -> int:
        """Optuna's storage id of the trial ``number`` of the Optuna study ``name``."""
        sid = self._storage.get_study_id_from_name(name)
        return self._storage.get_trial_id_from_study_id_trial_number(sid, number)

    def _publish(self) -> None:
        """A study on a URI: its copy of the search state follows every change to it."""
        try:
            search_storage.publish(self.exp.search.storage, self.study_dir)
        except (OSError, sqlite3.Error) as e:
            print(f"warning: could not copy the search state to {shown(self.study_dir)}: {e}", flush=True)


def sampler_of(exp: Experiment, name: str) -> optuna.samplers.BaseSampler:
    """TPE for one objective, NSGA-II for two (or the sampler asked for); a per-method study's
    seeded by its method's place, so that no two methods draw the same sequence."""
    s = exp.search
    kind = s.sampler if s.sampler != "auto" else ("nsga2" if len(s.objectives) == 2 else "tpe")
    seed = s.seed + (exp.methods.index(spaces.methods_of(exp, name)[0]) if spaces.per_method(exp) else 0)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.startup_trials)
    return {"random": optuna.samplers.RandomSampler, "nsga2": optuna.samplers.NSGAIISampler}[kind](seed=seed)
