"""Run a study on Ray: Ray Tune + Optuna over trials, each trial a Ray Train (DDP) run of
``ltray.trial.train_trial`` (or, with ``resources.in_process``, that body inside its Tune
process). The Tune / Train glue only; the command line is ``ltray.cli`` (``python -m
ltray.sweep`` runs it), the search space ``ltray.space``, one trial's body ``ltray.trial``.
One of the two modules that know Ray (with ``ltray.submit``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import time
import uuid

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from ltray import loggers, recovery, search_storage
from ltray import results as R
from ltray.core.metrics import VAL_METRICS
from ltray.errors import LtrayError
from ltray.evaluate import failed_trial_row
from ltray.experiment import Experiment, validate
from ltray.space import Space, default_points, split_config
from ltray.storage import join, open_store, parent, shown
from ltray.trial import (TrialSpec, label_unfinished, meta_of, row_without_result, stored_result, train_trial,
                         wait_for_original)

# The Tune function that drives one trial only waits on its TorchTrainer: it reserves no CPU (so
# trials pack on the workers' CPUs) but its ~250 MB process, which also makes Ray's bundle non-empty.
DRIVER_RESOURCES = {"cpu": 0, "memory": 256 * 2**20}


def train_worker(spec: TrialSpec) -> None:
    """Ray Train per-worker loop: the trial's body with Ray Train's report."""
    import ray.train

    ctx = ray.train.get_context()
    train_trial(_on_this_node(spec), ray.train, ctx.get_world_rank(), ctx.get_local_rank())


def _on_this_node(spec: TrialSpec) -> TrialSpec:
    """The spec with the node that runs it in its rows (the node of rank 0 writes them)."""
    import ray

    return dataclasses.replace(spec, meta=dataclasses.replace(spec.meta, node=ray.get_runtime_context().get_node_id()))


def run_trial(config: dict, exp: Experiment, study_dir: str) -> None:
    """Tune function trainable driving one trial: launches a TorchTrainer (Train V2 pattern)."""
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = tune.get_context().get_trial_id()
    method, hp = split_config(config)
    if R.finished_trials(study_dir).get(trial_id) == "failed":  # a retry of a recorded failure: no retraining
        raise RuntimeError(f"trial {trial_id} failed: see its row in the trials table")
    done = stored_result(study_dir, trial_id)
    if done is not None:  # finished before an interruption: report its stored result, never retrain
        tune.report(done)
        return
    recovery.check_space(study_dir, exp.resources.min_free_mb)
    repeat = int(config.get("__trial_index__", 0))
    seed = exp.seed + repeat
    original = recovery.claim(study_dir, method, hp, seed, repeat, trial_id)
    if original != trial_id:  # TPE re-picked a configuration already trained: same result, no training
        result = wait_for_original(study_dir, original, exp.search.duplicate_wait_s)
        row = R.load_study(study_dir, ("trials",))["trials"]
        row = row.filter(pa.compute.equal(row["trial_id"], original)).to_pydict()
        if row["trial_id"]:
            row.update(trial_id=[trial_id], status=["duplicate"], error=[f"same configuration as {original}"])
        else:  # the original was stopped by ASHA (its row comes at the study's end): the same stop
            row = row_without_result(meta_of(exp, trial_id, method, hp, repeat), "duplicate",
                                     f"same configuration as {original}, which ASHA stopped early", [], result)
        R.write_table(study_dir, "trials", trial_id, R.table("trials", row))
        tune.report(result)
        return
    r = exp.resources
    spec = TrialSpec.build(exp, study_dir, trial_id, method, hp, repeat)
    t0 = time.time()
    if r.in_process:
        try:
            train_trial(_on_this_node(spec), tune, 0, 0)
        except Exception as e:  # a Python error repeats on retry; a killed process never gets here
            _record_failure(spec, e, time.time() - t0)
            raise
        _finish(study_dir, trial_id)
        return
    recovery.drop_damaged_train_state(join(study_dir, "ray", f"train-{trial_id}"))
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=spec,
        scaling_config=ray.train.ScalingConfig(
            num_workers=r.num_workers, use_gpu=r.gpus_per_worker > 0,
            resources_per_worker={"CPU": r.cpus_per_worker, **({"GPU": r.gpus_per_worker} if r.gpus_per_worker else {})}),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}", storage_path=join(study_dir, "ray"),
            failure_config=ray.train.FailureConfig(max_failures=r.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()]),
    )
    try:
        trainer.fit()
    except Exception as e:
        _record_failure(spec, e, time.time() - t0)
        raise
    _finish(study_dir, trial_id)


def _finish(study_dir: str, trial_id: str) -> None:
    """The trial's last report is its stored row's validation metrics: Tune hands the last
    result to the searcher, so Optuna ranks the trial on exactly what the trials table says."""
    from ray import tune

    _check_finished(study_dir, trial_id)
    tune.report(stored_result(study_dir, trial_id))


def _record_failure(spec: TrialSpec, e: Exception, wall_s: float) -> None:
    """A failed trial gets its row, unless the disk is full or one of its processes died: then
    it raises instead, leaving the trial without a result row so that --resume trains it."""
    if recovery.disk_full(e):
        raise recovery.ResultsFull(f"{recovery.FULL}: trial {spec.meta.trial_id} could not write its results ({e})") from e
    died = _death(e)
    if died is not None:
        first = next((ln.strip() for ln in str(died).splitlines() if ln.strip()), "")
        raise recovery.ProcessDied(f"{recovery.DIED} ({type(died).__name__}: {first[:200]})") from e
    row = failed_trial_row(spec.meta, status="failed", error=f"{type(e).__name__}: {e}", epochs_run=0, wall_s=wall_s)
    R.write_table(spec.study_dir, "trials", spec.meta.trial_id, R.table("trials", row))


def _death(e: BaseException) -> BaseException | None:
    """The death of a process or node that ended a Train run, as Ray reports it (a worker's
    failed health check wraps the actor's death); None when the run ended by its own code."""
    import ray.exceptions as rex
    import ray.train

    died = (rex.RayActorError, rex.NodeDiedError, rex.WorkerCrashedError, rex.LocalRayletDiedError,
            rex.OwnerDiedError, rex.OutOfMemoryError, ray.train.PreemptionError)
    seen, todo = set(), [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, died):
            return x
        todo += [x.__cause__, getattr(x, "health_check_failure", None), getattr(x, "controller_failure", None),
                 *(getattr(x, "worker_failures", None) or {}).values()]
    return None


def _check_finished(study_dir: str, trial_id: str) -> None:
    status = R.finished_trials(study_dir).get(trial_id)
    if status == "failed":
        raise RuntimeError(f"trial {trial_id} failed: see its row in the trials table")
    if status != "completed":
        raise RuntimeError(f"trial {trial_id} ended without writing its results")


def _concurrency(exp: Experiment, cluster: dict) -> int:
    r = exp.resources
    if r.max_concurrent_trials:
        return r.max_concurrent_trials
    per_cpu = r.num_workers * r.cpus_per_worker
    n = math.floor(cluster.get("CPU", 1) / per_cpu + 1e-9)
    if r.gpus_per_worker:
        n = min(n, math.floor(cluster.get("GPU", 0) / (r.num_workers * r.gpus_per_worker) + 1e-9))
    return max(1, n)


def _progress_callback(metric: str, study_dir: str, storage: str):
    from ray import tune

    class Progress(tune.Callback):
        """A line per trial result, one per finished or failed trial; records how Tune ended each
        trial (``recovery.mark_ended``); at each of Tune's saves, copies its state whole to the
        study, with a URI study's search state."""

        staging = ""  # the driver's folder where Tune saves its state before uploading it

        def on_step_begin(self, iteration, trials, **info):
            if trials and not self.staging:
                self.staging = trials[0].local_experiment_path

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "trial_epoch" not in result:
                return
            head = f"[{trial.trial_id}] {trial.config.get('method')}"
            if "train_loss" in result:  # an epoch: its own value, then the selection so far
                print(f"{head} epoch {result['trial_epoch']}: {metric} {result['epoch_' + metric]:.4f}  "
                      f"(selected {result[metric]:.4f}, epoch {result['selected_epoch'] + 1})  "
                      f"loss {result['train_loss']:.4f}", flush=True)
            else:  # the trial's result, as stored
                print(f"{head} result: {metric} {result.get(metric, float('nan')):.4f} (epoch "
                      f"{result['selected_epoch'] + 1} of {result['trial_epoch']}, selected on validation)", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            last = trial.last_result or {}
            keep = (*VAL_METRICS, "selected_epoch", "trial_epoch", "progress")
            print(f"[{trial.trial_id}] done: {_knobs(trial.config)}", flush=True)
            recovery.mark_ended(study_dir, trial.trial_id, "complete", result={k: last[k] for k in keep if k in last},
                                config=_what(trial.config))

        def on_trial_error(self, iteration, trials, trial, **info):
            try:  # Tune's error file lives in the driver's local session folder, not the results disk
                error = open(trial.error_file).read()
            except (OSError, TypeError):
                error = ""
            cut = next((c for c in (recovery.FULL, recovery.DIED) if c in error), None)
            why = f"{cut}; --resume runs it again" if cut else "see the trials table"
            print(f"[{trial.trial_id}] FAILED: {_knobs(trial.config)} ({why})", flush=True)
            recovery.mark_ended(study_dir, trial.trial_id, "error", error=_last_line(error), config=_what(trial.config))

        def get_state(self):
            """Tune asks while it saves, right after writing its trials and its searcher's
            state: copied now, Tune's state and the search state are one consistent set."""
            _publish(storage, study_dir, self.staging)
            return None  # nothing of its own to restore

    return Progress()


def _publish(storage: str, study_dir: str, staging: str) -> None:
    """Copy the search state to the study's URI, then Tune's saved state to the study; a failed
    copy (the store unreachable for a moment, a full disk) is a warning, and Tune's next save
    copies both again."""
    try:
        search_storage.publish(storage, study_dir)
        if staging:  # known once Tune has a trial
            recovery.snapshot_tune_state(staging, study_dir)
    except (OSError, sqlite3.Error) as e:
        print(f"warning: could not copy the search and Tune state to {shown(study_dir)}: {e}", flush=True)


def _what(config: dict) -> dict:
    """A trial's method, knobs and repeat, from its Tune config (for its row if it writes none)."""
    method, hp = split_config(config)
    return {"method": method, "hp": hp, "repeat": int(config.get("__trial_index__", 0))}


def _last_line(traceback_text: str) -> str:
    """The exception line of a traceback (Ray's error files end with it), at most 500 characters."""
    lines = [ln.strip() for ln in traceback_text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def _knobs(config: dict) -> str:
    method, hp = split_config(config)
    return method + (" " + " ".join(f"{k}={v:.4g}" for k, v in hp.items()) if hp else "")


def _searcher(exp: Experiment, study_dir: str, resume: bool):
    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    s = exp.search
    two = len(s.objectives) == 2
    kind = s.sampler if s.sampler != "auto" else ("nsga2" if two else "tpe")
    sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=s.seed),
               "random": lambda: optuna.samplers.RandomSampler(seed=s.seed),
               "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=s.seed)}[kind]()
    storage = search_storage.open_storage(s.storage, study_dir, resume)
    searcher = OptunaSearch(
        space=Space(exp.methods, exp.search.ranges), metric=list(s.objectives) if two else s.objectives[0],
        mode=["max", "max"] if two else "max", sampler=sampler, storage=storage, study_name=exp.name,
        points_to_evaluate=default_points(exp.methods) if s.search_defaults_first else None)
    return Repeater(searcher, repeat=exp.repeats) if exp.repeats > 1 else searcher


def run_study(exp: Experiment, study_dir: str, resume: bool = False) -> str:
    """Run (or resume) the study with an already-initialised Ray; returns the study folder."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    study_dir = open_store(study_dir).uri  # local: an absolute path
    tune_path = join(study_dir, "ray")
    r = exp.resources
    # an in-process trial holds its worker's resources itself; a Train driver only waits
    own = {"cpu": r.cpus_per_worker, "gpu": r.gpus_per_worker} if r.in_process else DRIVER_RESOURCES
    trainable = tune.with_resources(tune.with_parameters(run_trial, exp=exp, study_dir=study_dir), own)
    metric = exp.search.objectives[0]
    if resume:
        recovery.release_stale_claims(study_dir)
        recovery.restore_tune_state(study_dir)
        # the restored searcher reopens its storage: the default SQLite of a study on a URI is
        # fetched from the study's copy first when this machine has none
        search_storage.open_storage(exp.search.storage, study_dir, resume=True)
    if resume and tune.Tuner.can_restore(join(tune_path, "tune")):
        # errored trials run again: a trial stopped by a full disk left no row; one recorded as
        # failed (diverged) re-raises at once in run_trial without training
        tuner = tune.Tuner.restore(join(tune_path, "tune"), trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
    else:
        scheduler = None
        if exp.search.asha:
            # progress = fraction of the trial's own epochs (cRT's 10-epoch stage and a 30-epoch run
            # reach a rung at the same fraction); a trial that finishes is never stopped at its
            # end, so its final report (the stored row) always reaches the searcher
            scheduler = ASHAScheduler(time_attr="progress", max_t=1.0, stop_last_trials=False,
                                      grace_period=exp.search.grace_epochs / exp.train.epochs)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=_searcher(exp, study_dir, resume), scheduler=scheduler, num_samples=exp.search.num_samples * exp.repeats,
                reuse_actors=True,  # a trial's driver process is kept for the next: ~3 s a trial here
                max_concurrent_trials=_concurrency(exp, ray.cluster_resources()),
                metric=None if len(exp.search.objectives) == 2 else metric, mode=None if len(exp.search.objectives) == 2 else "max"),
            run_config=tune.RunConfig(name="tune", storage_path=tune_path, verbose=0,
                                      callbacks=[_progress_callback(metric, study_dir, exp.search.storage),
                                                 *loggers.tune_callbacks(exp.search, exp.name)],
                                      # Train restarts its own workers; an in-process trial is
                                      # restarted by Tune, from its last checkpoint
                                      failure_config=tune.FailureConfig(max_failures=r.max_failures if r.in_process else 0),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
        )
    expected = exp.search.num_samples * exp.repeats
    try:
        # Tune's last save, at the end of fit, copied the search and Tune state (Progress.get_state)
        errors = [r.error for r in tuner.fit() if r.error is not None]
        label_unfinished(exp, study_dir)
    except Exception as e:  # a full disk breaks Tune's own state files and error pickles too
        if not (recovery.disk_full(e) or _low_space(exp, study_dir)):
            raise
        _raise_full(study_dir, expected)
    done = _finished(study_dir)
    if (any(recovery.disk_full(e) for e in errors) or _low_space(exp, study_dir)) and done < expected:
        _raise_full(study_dir, expected)
    if done < expected:
        print(f"warning: {expected - done} of {expected} trials have no result; see the errors above", flush=True)
    return study_dir


def _low_space(exp: Experiment, study_dir: str) -> bool:
    return recovery.free_mb(study_dir) < max(exp.resources.min_free_mb, 1.0)


def _finished(study_dir: str) -> int:
    """Trials that ended with a result (an interrupted one has a row but no result: --resume reruns it)."""
    return sum(status != "interrupted" for status in R.finished_trials(study_dir).values())


def _raise_full(study_dir: str, expected: int) -> None:
    free = recovery.free_mb(study_dir)
    done = _finished(study_dir)
    raise LtrayError(f"{recovery.FULL} under {study_dir} ({free:.0f} MiB free now): {expected - done} of {expected} trials "
                     f"did not finish. The {done} finished are kept; free space, then run the same command with --resume")


def launch(exp: Experiment, study_dir: str, address: str | None, resume: bool, on_connected=None) -> str:
    """Start (or join) Ray, check the cluster can run a trial, call ``on_connected`` (the CLI
    writes the study's files there), run the study and shut Ray down."""
    import ray

    # Ray's own per-worker logging would bury the one line per trial result printed by the
    # progress callback; errors still reach the trials table and the worker logs under the Ray session folder.
    ray.init(address=address, log_to_driver=False, logging_level="WARNING", runtime_env=_runtime_env())
    try:
        if address or os.environ.get("RAY_ADDRESS"):
            validate(exp, ray.cluster_resources())
        check_nodes_share(parent(study_dir))  # the results folder: the CLI has created it
        if on_connected is not None:
            on_connected()
        print(f"study {exp.name}: {exp.search.num_samples * exp.repeats} trials of {', '.join(exp.methods)} on "
              f"{exp.data.name} (rho={exp.data.rho:g}), results in {shown(study_dir)}", flush=True)
        return run_study(exp, study_dir, resume=resume)
    finally:
        ray.shutdown()


def check_nodes_share(results: str, timeout_s: float = 120.0) -> None:
    """Every alive node must see the results where the driver does, or its trials' rows would
    land on its own disk and be lost: a file the driver writes is read back on each node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

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


# Ray Train's controller takes one result off a worker's queue (size 1) per poll, 2 s apart by
# default, so every report after the first waited ~1.9 s here. Reports are >= report_every_s
# (2 s) apart, so a 1 s poll never makes one wait; each poll is a remote call to every worker
# (with 0.25 s and four trials at once, top showed each controller and helper actor near 7% of a core).
POLL_INTERVAL_S = "1.0"


def _runtime_env() -> dict:
    """Job-wide settings for the actors Ray Train starts (a value already set by the user wins)."""
    name = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
    return {} if name in os.environ else {"env_vars": {name: POLL_INTERVAL_S}}


if __name__ == "__main__":
    # run the importable copies: Tune pickles the search space and searcher by reference, and a
    # class from __main__ would not be the same object after ``--resume`` restores them
    import sys

    from ltray.cli import main

    sys.exit(main())
