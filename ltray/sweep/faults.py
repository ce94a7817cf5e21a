"""Pause points for fault tests: a test places a kill exactly at a phase of a trial's life (a
process waits at the point, the test kills the sweep's driver), never by timing luck.

With ``LTRAY_PAUSE=<point>`` in its environment, the first process to reach that point writes
``LTRAY_PAUSE_MARKER`` (a file path: "<point> <pid>") and sleeps until it is killed. Unset (as
always outside tests), a point costs one dictionary lookup. The sweep passes both variables on
to its Ray workers (``ltray.sweep.study._runtime_env``).
"""

from __future__ import annotations

import os
import time

POINTS = ("asked", "trial_started", "mid_trial", "row_written", "told", "tune_saving")
"""Where a kill can be placed, in a trial's order: Optuna asked a configuration (before the journal
records it); a trial's body started (before its first report); it trained two epochs; it wrote
its rows (before Tune hears of its end); Tune recorded its end and the searcher told Optuna
(before Tune saves its state); Tune saves its state."""
ENV = ("LTRAY_PAUSE", "LTRAY_PAUSE_MARKER")


def pause_point(name: str) -> None:
    """Wait here, for good, if this is the point the environment names (see the module docstring)."""
    if os.environ.get("LTRAY_PAUSE") != name:
        return
    marker = os.environ.get("LTRAY_PAUSE_MARKER", "")
    if marker:
        tmp = f"{marker}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{name} {os.getpid()}\n")
        os.replace(tmp, marker)
    while True:
        time.sleep(3600)
