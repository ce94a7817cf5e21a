"""Before a run: Optuna's record made to agree with the study's truth, and the run's plan.

The rows and the search journal are the truth (``ltray.sweep.plan``). Optuna's study follows
them: a configuration whose trials all have final rows is told (again, if a killed driver never
told it); one still training has a RUNNING trial; a trial Optuna asked for that the journal never
recorded (the driver died in between) is marked FAIL. A lost or damaged ``optuna.db`` is rebuilt
from the rows. A study started before the journal existed gets one, from Optuna's asked trials
and the rows. Everything here runs before Ray starts. No Ray here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna

from ltray import results as R
from ltray.config import Experiment
from ltray.errors import LtrayError
from ltray.methods.space import split_config
from ltray.results import search_storage
from ltray.results.storage import open_store, shown
from ltray.sweep import journal, spaces
from ltray.sweep.journal import Configuration
from ltray.sweep.outcomes import forget_ends
from ltray.sweep.plan import (RunPlan, StudyState, derive, is_final, knob_key, number_unindexed, plan_run,
                              values_of)

RUNNING = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


@dataclass
class SearchSetup:
    """What a run starts from: the recorded configurations and the run's plan."""

    configurations: list[Configuration]
    plan: RunPlan
    resumed: bool = False
    """A resumed study (a new one starts with no configuration)."""


def prepare_search(exp: Experiment, study_dir: str, resume: bool) -> SearchSetup:
    """Open (or rebuild) the study's Optuna record (one study, or one per method), bring it in
    line with the rows and the journal, and plan the run. A new study starts empty, its
    methods' defaults queued first."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, damaged = search_storage.open_repaired(exp.search.storage, study_dir, resume, repair=resume)
    existed = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    studies = {name: optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                         directions=["maximize"] * len(exp.search.objectives))
               for name in spaces.study_names(exp)}
    for name, study in studies.items():
        if name in existed and not resume and study.trials:
            raise LtrayError(f"search.storage {exp.search.storage!r} already holds an Optuna study named {name!r} "
                             f"with {len(study.trials)} trials; pass --name to start a new study (nothing was changed)")
    if resume:
        set_aside_damaged(study_dir)
    state = StudyState.read(study_dir) if resume else StudyState({}, {}, {})
    configurations = journal.read_all(study_dir) if resume else []
    if resume:
        configurations += _adopted(exp, studies, state, configurations, study_dir)
        for c in number_unindexed(configurations):
            journal.write(study_dir, c)
        _repair(exp, studies, storage, configurations, state, study_dir)
    for name, study in studies.items():
        if name not in existed or not study.trials:
            _queue_defaults(exp, name, study, configurations)
    if resume and (damaged or set(studies) - existed) and configurations:
        why = damaged or "it was missing"
        print(f"search state: Optuna's study rebuilt from the rows of {len(configurations)} configurations ({why})",
              flush=True)
    search_storage.publish(exp.search.storage, study_dir)
    plan = plan_run(exp, configurations, state)
    forget_ends(study_dir, [c.trials[r] for c, r in plan.work if r < len(c.trials) and c.trials[r]])
    return SearchSetup(configurations, plan, resume)


def set_aside_damaged(study_dir: str) -> list[R.Damaged]:
    """Every results file that cannot be read moves to ``damaged/<table>/`` (kept, never written
    over); a trial whose ``trials`` row was in one has no row now, so it trains again: its
    recorded end goes too, or an end ASHA gave it would count as final and label it stopped."""
    _, damaged = R.read_study(study_dir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    store = open_store(study_dir)
    for d in damaged:
        store.move((d.table, f"{d.trial_id}.parquet"), ("damaged", d.table, f"{d.trial_id}.parquet.{stamp}"))
        again = "; the trial trains again" if d.table == "trials" else ""
        if again:
            forget_ends(study_dir, [d.trial_id])
        print(f"damaged results file moved to {shown(store.uri_of('damaged', d.table))}: {d}{again}", flush=True)
    return damaged


def _adopted(exp: Experiment, studies: dict[str, optuna.Study], state: StudyState, recorded: list[Configuration],
             study_dir: str) -> list[Configuration]:
    """Journal records for what a study started before the journal (or lost with a record) holds:
    Optuna's asked trials no record names, and the trials no record names."""
    numbers = {(c.study or exp.name, c.number) for c in recorded}
    known = {t for c in recorded for t in c.trials if t}
    asked = []
    for name, study in studies.items():
        method = {"method": spaces.methods_of(exp, name)[0]} if spaces.per_method(exp) else {}
        asked += [("" if name == exp.name else name, t.number, {**method, **t.params})
                  for t in study.get_trials(deepcopy=False)
                  if t.state != optuna.trial.TrialState.WAITING and (name, t.number) not in numbers]
    out = derive(exp, state, asked, known)
    for c in out:
        journal.write(study_dir, c)
    return out


def _repair(exp: Experiment, studies: dict[str, optuna.Study], storage, configurations: list[Configuration],
            state: StudyState, study_dir: str) -> None:
    """Every configuration gets an Optuna trial that says how it stands: told when all its
    repeats are final, RUNNING while one trains; a RUNNING trial no configuration names fails."""
    trials = {(name, t.number): t for name, study in studies.items() for t in study.get_trials(deepcopy=False)}
    for c in configurations:
        name = c.study or spaces.study_of(exp, c.method)
        final = is_final(c, state, exp.repeats)
        values = values_of(c, state, exp.search.objectives) if final else None
        if c.number is None or (name, c.number) not in trials:
            c.study = "" if name == exp.name else name
            c.number = _create(exp, storage, storage.get_study_id_from_name(name), c, final, values)
            journal.write(study_dir, c)
        elif final and trials[(name, c.number)].state in RUNNING:
            tell(studies[name], storage, c.number, values)
    named = {(c.study or exp.name, c.number) for c in configurations}
    for (name, number), t in trials.items():
        if t.state == optuna.trial.TrialState.RUNNING and (name, number) not in named:
            studies[name].tell(number, state=optuna.trial.TrialState.FAIL)


def tell(study: optuna.Study, storage, number: int, values: list[float] | None) -> None:
    """Tell a configuration's values (per objective, the mean over its repeats), or FAIL when no
    repeat has one; nothing when Optuna already knows it finished (told before a driver died)."""
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name),
                                                                number)
    if storage.get_trial(trial_id).state.is_finished():
        return
    if values is None:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(number, values if len(values) > 1 else values[0])


def _create(exp: Experiment, storage, study_id: int, c: Configuration, final: bool, values) -> int:
    """An Optuna trial for a configuration Optuna lost: finished with its values, or RUNNING."""
    params, distributions = distributions_of(exp, c)
    State = optuna.trial.TrialState
    state = State.RUNNING if not final else (State.COMPLETE if values is not None else State.FAIL)
    kwargs = {"values": values} if state == State.COMPLETE else {}
    template = optuna.trial.create_trial(state=state, params=params, distributions=distributions,
                                         user_attrs=user_attrs(c, exp.seed), **kwargs)
    return storage.get_trial_number_from_id(storage.create_new_trial(study_id, template_trial=template))


def user_attrs(c: Configuration, seed: int) -> dict:
    """What maps an Optuna trial to the study's tables (optuna-dashboard shows them): the ltray
    trial and the seed of each repeat so far, and the method."""
    return {"trial_ids": [t for t in c.trials if t], "seeds": [seed + r for r, t in enumerate(c.trials) if t],
            "method": c.method}


def distributions_of(exp: Experiment, c: Configuration) -> tuple[dict, dict]:
    """The Optuna params and distributions of a configuration, from its Optuna study's space."""
    probe = _Probe(c.params())
    spaces.space_of(exp, c.study or spaces.study_of(exp, c.method))(probe)
    return probe.params, probe.distributions


class _Probe:
    """A stand-in Optuna trial that answers the space's suggestions with a configuration's values
    and records each one's distribution."""

    def __init__(self, config: dict):
        self.fixed = dict(config)
        self.params, self.distributions = {}, {}

    def _take(self, name, dist):
        value = self.fixed[name]
        self.params[name], self.distributions[name] = value, dist
        return value

    def suggest_float(self, name, low, high, log=False, step=None):
        return self._take(name, optuna.distributions.FloatDistribution(low, high, log=log, step=step))

    def suggest_int(self, name, low, high, log=False, step=1):
        self.fixed[name] = int(round(self.fixed[name]))
        return self._take(name, optuna.distributions.IntDistribution(low, high, log=log, step=step))

    def suggest_categorical(self, name, choices):
        return self._take(name, optuna.distributions.CategoricalDistribution(choices))


def _queue_defaults(exp: Experiment, name: str, study: optuna.Study, configurations: list[Configuration]) -> None:
    """Each method's published defaults run first: queued in its Optuna study (asked before the
    sampler proposes anything), unless a configuration at those defaults exists already."""
    if not exp.search.search_defaults_first:
        return
    waiting = [t.params for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))]
    have = {(c.method, knob_key(c.hp)) for c in configurations}
    for method, point in zip(spaces.methods_of(exp, name), spaces.defaults_of(exp, name)):
        _, hp = split_config({"method": method, **point})
        if (method, knob_key(hp)) not in have and point not in waiting:
            study.enqueue_trial(point)
