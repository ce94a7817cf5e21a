"""The search journal: one small file per configuration the search asked for, written before any
of its trials runs. A configuration (a method and its knobs) is one Optuna trial, trained once
per repeat; the journal names the ltray trial of each repeat and the Optuna trial's number.

With the rows, the journal is what ``--resume`` trusts: a configuration in the journal counts
against the study's budget whatever became of its trials, a trial it names without a final row
trains again under the same id, and Optuna's record is repaired from both. No Ray here.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field

from ltray.methods.space import SHARED
from ltray.results.provenance import now
from ltray.results.storage import open_store

FOLDER = "search"
TRIAL_ID = "__trial_id__"  # in a Tune trial's config: the ltray trial it trains (Tune's own id differs for a resumed one)
TRIAL_INDEX = "__trial_index__"  # in a Tune trial's config: its repeat
CONFIG_INDEX = "__config_index__"  # in a Tune trial's config: which configuration of its method (Configuration.index)


def trial_of(trial) -> str:
    """The ltray trial a Tune trial trains."""
    return trial.config.get(TRIAL_ID) or trial.trial_id


@dataclass
class Configuration:
    """One configuration of the search, as the journal records it."""

    key: str
    """Its file name: the ltray id of its first trial."""
    method: str
    hp: dict
    """The method's knobs as the search set them (``method.knob`` without the prefix)."""
    trials: list[str] = field(default_factory=list)
    """The ltray trial of each repeat so far: trials[r] trains repeat r ("" where none has yet)."""
    number: int | None = None
    """The Optuna trial's number in its study; None until one records it (a search state rebuilt from the rows)."""
    asked_at: str = ""
    study: str = ""
    """The Optuna study that asked for it: "" the study's own (one search over all methods), else
    the method's own study (``search.per_method``), named ``<study>.<method>``."""
    index: int = -1
    """Which configuration of its method it is, in the order asked (0: the first); -1: not known."""

    def params(self) -> dict:
        """The method and its knobs as the search space names them (``method.knob``, ``train.field``)."""
        return {"method": self.method, **{k if k.startswith(SHARED) else f"{self.method}.{k}": v
                                          for k, v in self.hp.items()}}

    def config(self, repeat: int) -> dict:
        """Tune's config of the trial that trains ``repeat``."""
        return {**self.params(), TRIAL_INDEX: repeat, TRIAL_ID: self.trials[repeat], CONFIG_INDEX: self.index}


def write(study_dir: str, c: Configuration) -> None:
    """Record (or update) a configuration; atomic, so a reader sees the old record or the new one."""
    c.asked_at = c.asked_at or now()
    open_store(study_dir).write_bytes(json.dumps(asdict(c), sort_keys=True).encode(), FOLDER, f"{c.key}.json")


def read_all(study_dir: str) -> list[Configuration]:
    """Every recorded configuration, in the order they were asked for (the Optuna trial number,
    then the time); a damaged record is skipped with a warning naming it."""
    store, out = open_store(study_dir), []
    for info in store.listdir(FOLDER):
        if not info.base_name.endswith(".json"):
            continue
        try:
            out.append(Configuration(**json.loads(store.read_bytes(FOLDER, info.base_name))))
        except (OSError, ValueError, TypeError) as e:
            warnings.warn(f"skipped unreadable search record {store.uri_of(FOLDER, info.base_name)}: {e}", stacklevel=2)
    big = float("inf")
    return sorted(out, key=lambda c: (c.number if c.number is not None else big, c.asked_at, c.key))
