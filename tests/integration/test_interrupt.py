"""Ctrl-C mid-study: the sweep exits 130 with one line saying how many trials finished and the
exact command that goes on, not Tune's ``Tuner.restore`` hint nor "see the errors above"; that
command finishes the study with the numbers of a run nobody interrupted. The SIGINT is placed
exactly: the first trial waits at a pause point (``ltray.sweep.faults``) when it is sent."""

import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from ltray import results as R

pytestmark = pytest.mark.ray


def test_ctrl_c_exits_130_with_the_resume_command_which_finishes_the_study(ray_head, tmp_path):
    marker = tmp_path / "marker"
    args = ["-m", "ltray.sweep", "experiments/quickstart.py", "--address", ray_head["address"], "--results",
            str(tmp_path), "--name", "ctrlc", "--set", "methods=ce,balanced_softmax", "search.num_samples=2",
            "train.epochs=3", "train.warmup_epochs=1", "resources.in_process=true", "resources.max_concurrent_trials=1"]
    env = {**ray_head["env"], "LTRAY_PAUSE": "trial_started", "LTRAY_PAUSE_MARKER": str(marker)}
    reference = subprocess.run([sys.executable, *args], cwd=ROOT, env=ray_head["env"], capture_output=True,
                               text=True, timeout=600)  # the same study, not interrupted
    assert reference.returncode == 0, reference.stdout[-3000:]
    args[args.index("ctrlc")] = "ctrlc2"
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # the user's Ctrl-C, to the sweep's own process
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out[-4000:]
    last = [ln for ln in out.splitlines() if ln.strip()][-1]
    assert last.startswith("interrupted: 0 of 2 trials finished; go on with: python -m ltray.sweep "), out[-3000:]
    assert "Tuner.restore" not in out and "see the errors above" not in out, out[-3000:]
    command = last.split("go on with: ", 1)[1]
    assert command.endswith("--resume")
    r = subprocess.run([sys.executable, *command.split()[1:]], cwd=ROOT, env=ray_head["env"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = R.load_study(str(tmp_path / "ctrlc2"), ("trials",))["trials"].to_pylist()
    done = {t["method"]: t for t in R.load_study(str(tmp_path / "ctrlc"), ("trials",))["trials"].to_pylist()}
    assert sorted(t["status"] for t in rows) == ["completed", "completed"]
    for t in rows:  # the same numbers as the run nobody interrupted
        assert t["val_bal_acc"] == pytest.approx(done[t["method"]]["val_bal_acc"]), t
