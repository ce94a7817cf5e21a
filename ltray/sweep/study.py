"""A study on Ray: ``launch`` starts (or joins) Ray and checks the cluster, ``run_study`` runs
Ray Tune with Optuna over the trials (``ltray.sweep.driver.run_trial``), or resumes it, and
labels every trial that ended without a row. The command line is ``ltray.sweep.cli``.
"""

from __future__ import annotations

import logging
import math
import os
import uuid

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ltray import results as R
from ltray.config import Experiment, validate
from ltray.errors import LtrayError
from ltray.results.disk import FULL, disk_full, free_mb
from ltray.results.schema import TrialStatus
from ltray.results.storage import join, open_store, parent, shown
from ltray.sweep import faults, loggers, spaces
from ltray.sweep.driver import run_trial
from ltray.sweep.interrupt import SweepInterrupted, interruptible
from ltray.sweep.outcomes import label_unfinished
from ltray.sweep.progress import Progress
from ltray.sweep.reconcile import SearchSetup
from ltray.sweep.searcher import StudySearch

# The Tune function that drives one trial only waits on its TorchTrainer: it reserves no CPU (so
# trials pack on the workers' CPUs) but its ~250 MB process, which also makes Ray's bundle non-empty.
DRIVER_RESOURCES = {"cpu": 0, "memory": 256 * 2**20}

# Ray Train's controller takes one result off a worker's queue (size 1) per poll, 2 s apart by
# default, so every report after the first waited ~1.9 s here. Reports are >= report_every_s
# (2 s) apart, so a 1 s poll never makes one wait; each poll is a remote call to every worker
# (with 0.25 s and four trials at once, top showed each controller and helper actor near 7% of a core).
POLL_INTERVAL_S = "1.0"


def launch(exp: Experiment, study_dir: str, address: str | None, run_id: str, setup_search, on_connected=None) -> str:
    """Start (or join) Ray, check the cluster can run a trial, call ``on_connected`` (the CLI
    writes a new study's files there), plan the search (``setup_search()``: the journal and
    Optuna reconciled with the rows), run the study and shut Ray down."""
    # Ray's own per-worker logging would bury the one line per trial result printed by the
    # progress callback; errors still reach the trials table and the worker logs under the Ray session folder.
    # no --address and no RAY_ADDRESS (a Ray Job's driver has one): a local Ray of its own, as
    # --help says; Ray's default would join any cluster `ray start` left running on this machine
    quiet()
    ray.init(address=address or (None if os.environ.get("RAY_ADDRESS") else "local"), log_to_driver=False,
             logging_level="WARNING", runtime_env=_runtime_env())
    try:
        validate(exp, ray.cluster_resources())  # every trial fits the cluster it runs on, local or not
        check_nodes_share(parent(study_dir))  # the results folder: the CLI has created it
        if on_connected is not None:
            on_connected()
        setup = setup_search()
        budget = (f" ({exp.search.per_method} configurations per method at most)" if spaces.per_method(exp) else "")
        print(f"study {exp.name}: {spaces.planned(exp) * exp.repeats} trials{budget} of {', '.join(exp.methods)} on "
              f"{exp.data.name} (rho={exp.data.rho:g}), results in {shown(study_dir)}"
              + (f"; {setup.plan.trials} to train now" if setup.resumed else ""), flush=True)
        return run_study(exp, study_dir, setup, run_id)
    finally:
        ray.shutdown()


def quiet() -> None:
    """Only what helps a user of a study: no notice that Ray's token authentication is on for the
    local Ray a sweep starts (Ray's default, kept), and Tune's legacy reporter at verbose=0 instead
    of its boxes, paths and a TensorBoard hint for a tool ltray does not use (RAY_AIR_NEW_OUTPUT=1
    brings them back). Errors and warnings about the study itself still show."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


def run_study(exp: Experiment, study_dir: str, setup: SearchSetup, run_id: str = "") -> str:
    """Run the trials ``setup`` plans with an already-initialised Ray: Tune executes them, the
    study's own searcher hands them out (a fresh Tune experiment every run: nothing of Tune's
    saved state is read back). Labels every trial that ended without a row; returns the study folder."""
    study_dir = open_store(study_dir).uri  # local: an absolute path
    expected = spaces.planned(exp) * exp.repeats
    errors = []
    try:
        if setup.plan.trials:
            # each run its own Tune experiment folder under ray/: a resumed run never mixes with Tune's old state
            name = f"tune-{run_id or 'resumed'}" if setup.resumed else "tune"
            with interruptible() as stopped:
                errors = [r.error for r in _tuner(exp, study_dir, setup, run_id, name).fit() if r.error is not None]
            if stopped.is_set():
                label_unfinished(exp, study_dir)
                raise SweepInterrupted(f"{_finished(study_dir)} of {expected} trials finished")
        label_unfinished(exp, study_dir)
    except Exception as e:  # a full disk breaks Tune's own state files and error pickles too
        if not (disk_full(e) or _low_space(exp, study_dir)):
            raise
        _raise_full(study_dir, expected)
    done = _finished(study_dir)
    if (any(disk_full(e) for e in errors) or _low_space(exp, study_dir)) and done < expected:
        _raise_full(study_dir, expected)
    if done < expected:
        print(f"warning: {expected - done} of {expected} trials have no result; see the errors above", flush=True)
    return study_dir


def _tuner(exp: Experiment, study_dir: str, setup: SearchSetup, run_id: str, name: str) -> tune.Tuner:
    """Tune's Tuner of this run: the trials the plan counts, handed out by the study's searcher."""
    r = exp.resources
    # an in-process trial holds its worker's resources itself; a Train driver only waits
    own = {"cpu": r.cpus_per_worker, "gpu": r.gpus_per_worker} if r.in_process else DRIVER_RESOURCES
    trainable = tune.with_resources(tune.with_parameters(run_trial, exp=exp, study_dir=study_dir, run_id=run_id), own)
    callbacks = [Progress(exp.search.objectives[0], study_dir), *loggers.tune_callbacks(exp.search, exp.name)]
    return tune.Tuner(trainable, tune_config=_tune_config(exp, study_dir, setup),
                      run_config=tune.RunConfig(name=name, storage_path=join(study_dir, "ray"), verbose=0,
                                                callbacks=callbacks,
                                                # Train restarts its own workers; an in-process trial is
                                                # restarted by Tune (from its checkpoint in the study)
                                                failure_config=tune.FailureConfig(
                                                    max_failures=r.max_failures if r.in_process else 0)))


def _tune_config(exp: Experiment, study_dir: str, setup: SearchSetup) -> tune.TuneConfig:
    """The searcher, ASHA if asked, the number of trials and how many run at once."""
    scheduler, two = None, len(exp.search.objectives) == 2
    if exp.search.asha:
        # progress = fraction of the trial's own epochs (cRT's 10-epoch stage and a 30-epoch run
        # reach a rung at the same fraction); a trial that finishes is never stopped at its
        # end, so its final report (the stored row) always reaches the searcher
        scheduler = ASHAScheduler(time_attr="progress", max_t=1.0, stop_last_trials=False,
                                  grace_period=exp.search.grace_epochs / exp.train.epochs)
    return tune.TuneConfig(search_alg=StudySearch(exp, study_dir, setup), scheduler=scheduler,
                           num_samples=setup.plan.trials,
                           reuse_actors=True,  # a trial's driver process is kept for the next: ~3 s a trial here
                           max_concurrent_trials=_concurrency(exp, ray.cluster_resources()),
                           metric=None if two else exp.search.objectives[0], mode=None if two else "max")


def _concurrency(exp: Experiment, cluster: dict) -> int:
    r = exp.resources
    if r.max_concurrent_trials:
        return r.max_concurrent_trials
    per_cpu = r.num_workers * r.cpus_per_worker
    n = math.floor(cluster.get("CPU", 1) / per_cpu + 1e-9)
    if r.gpus_per_worker:
        n = min(n, math.floor(cluster.get("GPU", 0) / (r.num_workers * r.gpus_per_worker) + 1e-9))
    return max(1, n)


def _low_space(exp: Experiment, study_dir: str) -> bool:
    return free_mb(study_dir) < max(exp.resources.min_free_mb, 1.0)


def _finished(study_dir: str) -> int:
    """Trials that ended with a result (an interrupted one has a row but no result: --resume reruns it)."""
    return sum(status != TrialStatus.INTERRUPTED for status in R.finished_trials(study_dir).values())


def _raise_full(study_dir: str, expected: int) -> None:
    free = free_mb(study_dir)
    done = _finished(study_dir)
    raise LtrayError(f"{FULL} under {study_dir} ({free:.0f} MiB free now): {expected - done} of {expected} trials "
                     f"did not finish. The {done} finished are kept; free space, then run the same command with --resume")


def check_nodes_share(results: str, timeout_s: float = 120.0) -> None:
    """Every alive node must see the results where the driver does, or its trials' rows would
    land on its own disk and be lost: a file the driver writes is read back on each node."""
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) < 2 and not ray.util.client.ray.is_connected():  # a ray:// driver is off the cluster
        return
    store, marker = open_store(results), f".ltray-node-probe-{uuid.uuid4().hex[:8]}"
    store.write_bytes(marker.encode(), marker)
    try:
        probe = ray.remote(num_cpus=0)(_sees)
        answers = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                           .remote(results, marker) for n in nodes], timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise LtrayError(f"the cluster's nodes did not answer within {timeout_s:g} s whether they see the results "
                         f"under {shown(results)}; nothing was run") from None
    finally:
        store.remove(marker)
    blind = [f"node {n['NodeID'][:12]} at {n['NodeManagerAddress']} {why}" for n, why in zip(nodes, answers) if why]
    if blind:
        raise LtrayError(f"the results under {shown(results)} are not shared by every node of this cluster: "
                         + "; ".join(blind) + ". Pass --results a URI every node reaches (s3://bucket/path, gs://...) "
                         "or a folder on a shared filesystem (NFS); nothing was run")


def _sees(results: str, marker: str) -> str:
    """On one node: "" if it reads the driver's marker, else why not."""
    try:
        ok = open_store(results).read_bytes(marker) == marker.encode()
        return "" if ok else "reads a different file there"
    except FileNotFoundError:
        return "does not see that folder (it is local to the driver's machine)"
    except Exception as e:  # credentials, endpoint, permissions on that node
        return f"cannot read it: {type(e).__name__}: {e}"


def _runtime_env() -> dict:
    """Job-wide settings for the actors Ray starts (a value already set by the user wins): Ray
    Train's poll, and a fault test's pause point (``ltray.sweep.faults``)."""
    name = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
    env = {} if name in os.environ else {name: POLL_INTERVAL_S}
    env |= {k: os.environ[k] for k in faults.ENV if k in os.environ}
    return {"env_vars": env} if env else {}
