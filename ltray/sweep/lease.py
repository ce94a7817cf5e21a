"""One run per study at a time: the sweep's driver holds ``<study>/lease.json`` from before Ray
starts until it exits, and renews it every ``RENEW_S`` seconds. A second run on the study is
refused with one line naming the holder. A lease whose driver died (killed, its machine lost)
is stale and is taken over: on the holder's machine a lease is stale as soon as its process is
gone; from anywhere else, once it has not been renewed for ``STALE_S`` seconds.

A trial writes its ``trials`` row only while the lease names its run (``check``): a trial that
outlived its killed driver for a moment cannot write over the run that took the study over.

Locally (and on NFS) the lease is created with ``O_EXCL`` and taken over by an atomic rename,
so of two runs racing for it exactly one wins. An object store has neither: two runs started
within one upload of each other may both take it (``Store.create_new``); the later one's read
back normally sees the other. No Ray here.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass

from ltray.errors import LtrayError
from ltray.results.storage import open_store, shown

FILE = "lease.json"
RENEW_S = 10.0  # seconds between renewals of a held lease
STALE_S = 60.0  # a lease not renewed for this long (seconds) belongs to a driver that died


class LeaseLost(RuntimeError):
    """This run no longer holds the study's lease: another run took the study over."""


@dataclass(frozen=True)
class Lease:
    run_id: str
    host: str
    pid: int
    started: float
    """Seconds since the epoch."""
    renewed: float
    """Seconds since the epoch, at the last renewal."""
    proc_start: str = ""
    """The holder process's start time (Linux: /proc/<pid>/stat field 22): a reused pid is not it."""

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"run {self.run_id} (pid {self.pid} on {self.host}, started {when})"


def acquire(study_dir: str) -> Lease:
    """Take the study's lease for this process; LtrayError naming the holder if a live run has it."""
    store = open_store(study_dir)
    mine = Lease(run_id=uuid.uuid4().hex[:12], host=socket.gethostname(), pid=os.getpid(), started=time.time(),
                 renewed=time.time(), proc_start=_proc_start(os.getpid()))
    data = json.dumps(asdict(mine)).encode()
    if store.create_new(data, FILE):
        return mine
    held = read(study_dir)
    if held is not None and not stale(held):
        raise LtrayError(f"{shown(study_dir)} is in use by {held.describe()}; wait for it to end, or stop it "
                         f"(nothing was changed)")
    if not _take_over(store, held) or not store.create_new(data, FILE) or read(study_dir) != mine:
        raise LtrayError(f"{shown(study_dir)}: another run took its stale lease at the same moment; "
                         "run the command again in a minute (nothing was changed)")
    print(f"{shown(study_dir)}: took over the lease of {held.describe() if held else 'an unreadable lease'}, "
          "whose driver is gone", flush=True)
    return mine


def read(study_dir: str) -> Lease | None:
    """The lease as stored, or None (no lease, or a damaged file)."""
    try:
        return Lease(**json.loads(open_store(study_dir).read_bytes(FILE)))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return None


def stale(lease: Lease, now: float | None = None) -> bool:
    """Whether the lease's driver is gone: on its own machine, its process (the same one, not a
    reused pid) has ended; from elsewhere, it has not renewed the lease for STALE_S seconds."""
    if lease.host == socket.gethostname():
        if lease.proc_start:
            return _proc_start(lease.pid) != lease.proc_start
        try:  # no /proc here: whether any process has the pid
            os.kill(lease.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return (now if now is not None else time.time()) - lease.renewed > STALE_S


def check(study_dir: str, run_id: str) -> None:
    """Raise LeaseLost unless the study's lease names ``run_id`` (an empty run id: not checked)."""
    if not run_id:
        return
    held = read(study_dir)
    if held is None or held.run_id != run_id:
        raise LeaseLost(f"run {run_id} no longer holds the lease of {shown(study_dir)} "
                        f"({held.describe() if held else 'no lease'}); its rows are not written")


def release(study_dir: str, lease: Lease) -> None:
    """Give the lease back, if it is still this run's."""
    held = read(study_dir)
    if held is not None and held.run_id == lease.run_id:
        open_store(study_dir).remove(FILE)


class Renewal:
    """Renews a held lease every RENEW_S seconds in a daemon thread, while the run lasts."""

    def __init__(self, study_dir: str, lease: Lease):
        self.study_dir, self.lease = study_dir, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ltray-lease", daemon=True)

    def __enter__(self) -> Renewal:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        release(self.study_dir, self.lease)

    def _run(self) -> None:
        while not self._stop.wait(RENEW_S):
            held = read(self.study_dir)
            if held is None or held.run_id != self.lease.run_id:
                return  # taken over: trials will find out when they write (check)
            renewed = Lease(**{**asdict(self.lease), "renewed": time.time()})
            try:
                open_store(self.study_dir).write_bytes(json.dumps(asdict(renewed)).encode(), FILE)
            except OSError:  # the store unreachable for a moment: the next renewal tries again
                pass


def _take_over(store, held: Lease | None) -> bool:
    """Set the stale lease aside, if it is still the one read (False: another run moved it first)."""
    aside = f".{FILE}.stale-{uuid.uuid4().hex[:8]}"
    try:
        store.move((FILE,), (aside,))
    except (FileNotFoundError, OSError):
        return False
    try:
        moved = Lease(**json.loads(store.read_bytes(aside)))
    except (OSError, ValueError, TypeError):
        moved = None
    if moved != held:  # another run had taken the study over in between: put its lease back
        store.move((aside,), (FILE,))
        return False
    store.remove(aside)
    return True


def _proc_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "" where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
