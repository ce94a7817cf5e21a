"""One run per study: the lease refuses a second live run with one line naming it, is taken over
from a driver that died (its process gone, or its renewals stopped on another machine), and a
trial of a run that lost it writes no row."""

import dataclasses
import json
import socket
import subprocess
import sys
import time

import pytest

from ltray import results as R
from ltray.config import Experiment, Recipe
from ltray.errors import LtrayError
from ltray.results.storage import open_store
from ltray.sweep import lease
from ltray.sweep.trial import LocalApi, TrialSpec, train_trial


def _write(where: str, held: lease.Lease) -> None:
    open_store(where).write_bytes(json.dumps(dataclasses.asdict(held)).encode(), lease.FILE)


def test_a_second_live_run_is_refused_naming_the_holder(tmp_path):
    where = str(tmp_path / "study")
    mine = lease.acquire(where)
    # another process: this one is alive, so its lease is not stale
    code = f"from ltray.sweep import lease; lease.acquire({where!r})"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0 and f"is in use by run {mine.run_id} (pid {mine.pid} on {socket.gethostname()}" in r.stderr
    lease.release(where, mine)
    assert not open_store(where).exists(lease.FILE)


def test_the_lease_of_a_driver_that_died_is_taken_over(tmp_path, capsys):
    where = str(tmp_path / "study")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    _write(where, lease.Lease("gone", socket.gethostname(), pid, time.time(), time.time(), proc_start="12345"))
    mine = lease.acquire(where)
    assert lease.read(where) == mine and "took over the lease of run gone" in capsys.readouterr().out
    with pytest.raises(lease.LeaseLost, match="run gone no longer holds the lease"):
        lease.check(where, "gone")
    lease.check(where, mine.run_id)


def test_on_another_machine_a_lease_is_stale_only_once_its_renewals_stopped(tmp_path):
    where = str(tmp_path / "study")
    now = time.time()
    _write(where, lease.Lease("far", "another-host", 1, now - 600, now - 5))
    with pytest.raises(LtrayError, match="in use by run far"):
        lease.acquire(where)
    _write(where, lease.Lease("far", "another-host", 1, now - 600, now - lease.STALE_S - 1))
    assert lease.acquire(where).run_id != "far"


def test_a_lease_is_renewed_while_its_run_lasts_and_given_back_at_its_end(tmp_path, monkeypatch):
    where = str(tmp_path / "study")
    monkeypatch.setattr(lease, "RENEW_S", 0.05)
    mine = lease.acquire(where)
    with lease.Renewal(where, mine):
        time.sleep(0.3)
        assert lease.read(where).renewed > mine.renewed
    assert lease.read(where) is None


def test_a_trial_whose_run_lost_the_lease_writes_no_row(tmp_path):
    """A trial that outlived its killed driver for a moment must not write over the run that took
    the study over (the orphaned Ray Train trial of issue 18)."""
    where = str(tmp_path / "study")
    exp = Experiment(name="lost", train=Recipe(epochs=1, warmup_epochs=0))
    taker = lease.acquire(where)  # the run that took over
    spec = TrialSpec.build(exp, where, "t0", "ce", {}, 0, run_id="killed")
    with pytest.raises(lease.LeaseLost):
        train_trial(spec, LocalApi(), 0, 0)
    assert R.finished_trials(where) == {}
    train_trial(dataclasses.replace(spec, run_id=taker.run_id), LocalApi(), 0, 0)
    assert R.finished_trials(where) == {"t0": "completed"}
    assert not open_store(where).exists("checkpoints", "t0", "state.pt")  # removed once the rows are written
