"""Ctrl-C during a study. The first SIGINT stops Ray Tune the way its own handler would (its
SIGUSR1 stop: the running trials are cut off, Tune writes its state) and is remembered, so the
run ends with ``SweepInterrupted`` and the command exits 130 with the ``--resume`` line, not 0
with Tune's ``Tuner.restore`` hint, which does not apply to an ltray study. A second SIGINT is
Python's ``KeyboardInterrupt``, at once. No ltray import beyond errors: the CLI catches both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

RESTORE_HINTS = ("Tuner.restore", "Resume experiment with", "Resume training with")


class SweepInterrupted(Exception):
    """SIGINT stopped the run after Tune ended its trials; their rows say they were cut off."""


class _NoRestoreHint(logging.Filter):
    """Tune's advice to resume with ``Tuner.restore``: ltray resumes with ``--resume``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(h in record.getMessage() for h in RESTORE_HINTS)


@contextlib.contextmanager
def interruptible():
    """Around ``Tuner.fit``: yields an Event set once SIGINT asked the run to stop."""
    hit = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread takes signals
        yield hit
        return

    def on_sigint(sig, frame):
        hit.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: at once
        if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt  # Tune is not running yet: nothing of it to stop
        print("\nstopping: the trials running now are cut off, their rows say so (Ctrl-C again to stop at once)",
              flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own graceful stop (it always handles SIGUSR1)

    hint = _NoRestoreHint()
    tune_log = logging.getLogger("ray.tune.tune")  # where Tune logs its restore hint
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours, not Tune's: it would hide that the user stopped the run
    previous = signal.signal(signal.SIGINT, on_sigint)
    tune_log.addFilter(hint)
    try:
        yield hit
    finally:
        signal.signal(signal.SIGINT, previous)
        tune_log.removeFilter(hint)
