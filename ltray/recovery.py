"""Compatibility shim: a study started before 0.2 pickled its Tune callback with references to
this module, which --resume must unpickle. What it held now lives in ``ltray.sweep.outcomes``,
``ltray.sweep.claims``, ``ltray.sweep.tune_state`` and ``ltray.results.disk``."""

from ltray.results.disk import FULL, ResultsFull, check_space, disk_full, free_mb  # noqa: F401
from ltray.sweep.outcomes import DIED, ProcessDied, mark_ended, outcomes  # noqa: F401
from ltray.sweep.tune_state import restore_tune_state, snapshot_tune_state  # noqa: F401
