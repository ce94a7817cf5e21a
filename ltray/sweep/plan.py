"""What a run of a study has left to do, from what is stored: the rows (the truth of how each
trial ended), the search journal (which configurations the search asked for, and the trial of
each repeat), the claims and Tune's recorded ends. No Tune state is read: a driver killed at any
moment leaves Tune's own files behind its trials, but never behind the rows and the journal.

A trial with a final row (completed, duplicate, failed, stopped) never trains again. Every other
trial the journal names trains again under its own id, from its last checkpoint; a repeat the
journal has no trial for yet gets a new one; the rest of the budget is new configurations. No Ray
here; Optuna is the searcher's business (``ltray.sweep.searcher``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from ltray import results as R
from ltray.config import Experiment
from ltray.methods.space import split_config
from ltray.results.schema import TrialStatus
from ltray.sweep import spaces
from ltray.sweep.claims import claims
from ltray.sweep.journal import Configuration
from ltray.sweep.outcomes import outcomes

FINAL = frozenset(s for s in TrialStatus if s.is_final)


@dataclass
class StudyState:
    """How every trial of a study stands, read once from its files."""

    rows: dict[str, dict]
    """trial_id -> its trials row."""
    ended: dict[str, dict]
    """trial_id -> how Tune ended it (``outcomes.outcomes``)."""
    claimed: dict[str, dict]
    """trial_id -> its claim (method, hp, seed, repeat)."""

    @classmethod
    def read(cls, study_dir: str) -> StudyState:
        tables, _ = R.read_study(study_dir, ("trials",))  # the damaged ones were set aside before
        rows = {r["trial_id"]: r for r in tables["trials"].to_pylist()}
        return cls(rows=rows, ended=outcomes(study_dir), claimed=claims(study_dir))

    def final(self, trial_id: str) -> bool:
        """Never trains again: a final row, or ended by ASHA (its row is written at the run's end)."""
        row, end = self.rows.get(trial_id), self.ended.get(trial_id)
        if row is not None:
            return row["status"] in FINAL
        return end is not None and end["how"] == "complete" and bool(end["result"])

    def identity(self, trial_id: str) -> tuple[str, dict, int] | None:
        """(method, knobs, repeat) of a trial, from its row, claim or recorded end."""
        if trial_id in self.rows:
            r = self.rows[trial_id]
            return r["method"], dict(r["params"] or []), int(r["repeat"])
        c = self.claimed.get(trial_id) or (self.ended.get(trial_id) or {}).get("config")
        return (c["method"], dict(c.get("hp", {})), int(c.get("repeat", 0))) if c and c.get("method") else None


@dataclass
class RunPlan:
    """The trials one run trains: the unfinished repeats of recorded configurations first (in the
    order they were asked for), then ``new`` configurations the sampler has not proposed yet."""

    work: list[tuple[Configuration, int]]
    """(configuration, repeat) to train: a repeat it names a trial for trains again under that id."""
    new: int
    """Configurations still to ask the sampler for."""
    repeats: int
    new_of: dict[str, int] = field(default_factory=dict)
    """search.per_method: method -> its configurations still to ask for (they sum to ``new``)."""

    @property
    def trials(self) -> int:
        """Tune trials this run launches."""
        return len(self.work) + self.new * self.repeats


def plan_run(exp: Experiment, configurations: list[Configuration], state: StudyState) -> RunPlan:
    """The run's work: every repeat of a recorded configuration without a final trial, and the
    configurations the budget (``search.num_samples``, or each method's ``search.per_method``)
    still allows."""
    work = [(c, r) for c in configurations for r in range(exp.repeats)
            if r >= len(c.trials) or not c.trials[r] or not state.final(c.trials[r])]
    if not spaces.per_method(exp):
        return RunPlan(work=work, new=max(0, exp.search.num_samples - len(configurations)), repeats=exp.repeats)
    have = Counter(c.method for c in configurations)
    new_of = {m: max(0, q - have[m]) for m, q in spaces.quota(exp).items()}
    return RunPlan(work=work, new=sum(new_of.values()), repeats=exp.repeats, new_of=new_of)


def is_final(c: Configuration, state: StudyState, repeats: int) -> bool:
    return len(c.trials) == repeats and all(t and state.final(t) for t in c.trials)


def values_of(c: Configuration, state: StudyState, objectives: tuple[str, ...]) -> list[float] | None:
    """What the searcher is told of a finished configuration: per objective, the mean over its
    repeats that have a value (failed ones have none); None when no repeat has one (Optuna: FAIL).
    The rows' values, else the result Tune was told (a trial ASHA stopped, its row still to come)."""
    per_repeat = []
    for t in c.trials:
        row, end = state.rows.get(t), state.ended.get(t) or {}
        told = row if row is not None and row["status"] != TrialStatus.FAILED else end.get("result") or {}
        vals = [told.get(o) for o in objectives]
        if all(v is not None and math.isfinite(v) for v in vals):
            per_repeat.append(vals)
    if not per_repeat:
        return None
    return [sum(v[i] for v in per_repeat) / len(per_repeat) for i in range(len(objectives))]


def derive(exp: Experiment, state: StudyState, asked: list[tuple[str, int, dict]],
           known: set[str]) -> list[Configuration]:
    """The configurations of a study started before the journal existed (ltray 0.1), or whose
    records were lost, from Optuna's asked trials ((study, number, params) in number order; the
    params name the method) and the trials the study
    knows of (rows, claims, recorded ends) that no ``known`` configuration names. Each Optuna
    trial takes, per repeat, the first unassigned trial with its method and knobs; the trials
    left over form configurations of their own (their Optuna trials were lost)."""
    pool: dict[tuple, list[str]] = {}
    for tid in sorted((set(state.rows) | set(state.claimed) | set(state.ended)) - known):
        ident = state.identity(tid)
        if ident is not None:
            method, hp, repeat = ident
            pool.setdefault((method, knob_key(hp), repeat), []).append(tid)
    out = [_from_optuna(study, number, params, pool, exp.repeats) for study, number, params in asked]
    for (method, knobs, repeat), tids in sorted(pool.items(), key=lambda kv: kv[0][2]):
        for tid in tids:  # a leftover trial joins the first leftover configuration with its slot free
            home = next((c for c in out if c.number is None and c.method == method and knob_key(c.hp) == knobs
                         and (len(c.trials) <= repeat or not c.trials[repeat])), None)
            if home is None:
                home = Configuration(key=tid, method=method, hp=dict(knobs), trials=[])
                out.append(home)
            home.trials += [""] * (repeat + 1 - len(home.trials))
            home.trials[repeat] = tid
    return out


def _from_optuna(study: str, number: int, params: dict, pool: dict, repeats: int) -> Configuration:
    method, hp = split_config({"method": "", **params})
    trials = []
    for r in range(repeats):
        free = pool.get((method, knob_key(hp), r), [])
        trials.append(free.pop(0) if free else "")  # "": no trial of this repeat started yet
    while trials and not trials[-1]:
        trials.pop()
    key = next((t for t in trials if t), f"optuna-{number}")
    return Configuration(key=key, method=method, hp=hp, trials=trials, number=number, study=study)


def knob_key(hp: dict) -> tuple:
    """A configuration's knobs as a comparable key (a NaN knob, from an old row, left out)."""
    return tuple(sorted((k, float(v)) for k, v in hp.items() if not (isinstance(v, float) and math.isnan(v))))


def number_unindexed(configurations: list[Configuration]) -> list[Configuration]:
    """Give each configuration without an ``index`` (adopted, or from before ltray 0.3) the next
    one of its method, in the order they were asked for; returns those it changed."""
    top = Counter()
    for c in configurations:
        top[c.method] = max(top[c.method], c.index + 1)
    changed = []
    for c in configurations:
        if c.index < 0:
            c.index, top[c.method] = top[c.method], top[c.method] + 1
            changed.append(c)
    return changed
