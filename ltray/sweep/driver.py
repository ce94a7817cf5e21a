"""The Tune function that drives one trial (``run_trial``): a trial already finished re-reports
its stored row, a re-picked configuration waits for the trial that trains it, and a new one
trains, in its own Tune process (``resources.in_process``) or as a Ray Train run of DDP workers.
How it ended is recorded once: its rows (``ltray.sweep.trial``, ``ltray.sweep.outcomes``), then
its last report, which is what the searcher is told.
"""

from __future__ import annotations

import dataclasses
import json
import time

import ray
import ray.exceptions as rex
import ray.train
from ray import tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from ltray import results as R
from ltray.config import Experiment, meta_of
from ltray.methods.space import split_config
from ltray.results.disk import FULL, ResultsFull, check_space, disk_full
from ltray.results.schema import TrialStatus
from ltray.results.storage import join, open_store
from ltray.sweep import claims
from ltray.sweep.lease import LeaseLost
from ltray.sweep.journal import CONFIG_INDEX, TRIAL_ID, TRIAL_INDEX
from ltray.sweep.outcomes import DIED, ProcessDied, record_duplicate, record_failed, stored_result, wait_for_original
from ltray.sweep.trial import TrialSpec, train_trial


def run_trial(config: dict, exp: Experiment, study_dir: str, run_id: str = "") -> None:
    """Tune function trainable driving one trial: the ltray trial ``config`` names (a resumed one
    keeps its id; Tune's own differs), of the run ``run_id`` (which must hold the study's lease
    when the trial writes its row)."""
    trial_id = config.get(TRIAL_ID) or tune.get_context().get_trial_id()
    method, hp = split_config(config)
    repeat, index = int(config.get(TRIAL_INDEX, 0)), int(config.get(CONFIG_INDEX, -1))
    if R.finished_trials(study_dir).get(trial_id) == TrialStatus.FAILED:  # a retry of a recorded failure
        raise RuntimeError(f"trial {trial_id} failed: see its row in the trials table")
    done = stored_result(study_dir, trial_id)
    if done is not None:  # finished before an interruption: report its stored result, never retrain
        tune.report(done)
        return
    check_space(study_dir, exp.resources.min_free_mb)
    original = claims.claim(study_dir, method, hp, exp.seed + repeat, repeat, trial_id)
    if original != trial_id:  # TPE re-picked a configuration already trained: same result, no training
        _report_duplicate(exp, study_dir, meta_of(exp, trial_id, method, hp, repeat, index), original)
        return
    spec = TrialSpec.build(exp, study_dir, trial_id, method, hp, repeat, run_id, index)
    if exp.resources.in_process:
        _train_in_process(spec)
    else:
        _train_with_workers(spec)
    _report_stored(study_dir, trial_id)


def _report_duplicate(exp: Experiment, study_dir: str, meta: R.TrialMeta, original: str) -> None:
    result = wait_for_original(study_dir, original, exp.search.duplicate_wait_s)
    record_duplicate(exp, study_dir, meta, original, result)
    tune.report(result)


def _train_in_process(spec: TrialSpec) -> None:
    """The trial's body in this Tune process (one worker, no DDP; Tune restarts it from its checkpoint)."""
    t0 = time.time()
    try:
        train_trial(_on_this_node(spec), tune, 0, 0)
    except Exception as e:  # a Python error repeats on retry; a killed process never gets here
        _record_failure(spec, e, time.time() - t0)
        raise


def _train_with_workers(spec: TrialSpec) -> None:
    """The trial's body as a Ray Train run: resources.num_workers DDP workers, restarted (from the
    trial's last checkpoint in the study) up to resources.max_failures times."""
    r, trial_id = spec.resources, spec.meta.trial_id
    drop_damaged_train_state(join(spec.study_dir, "ray", f"train-{trial_id}"))
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=spec,
        scaling_config=ray.train.ScalingConfig(
            num_workers=r.num_workers, use_gpu=r.gpus_per_worker > 0,
            resources_per_worker={"CPU": r.cpus_per_worker, **({"GPU": r.gpus_per_worker} if r.gpus_per_worker else {})}),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}", storage_path=join(spec.study_dir, "ray"),
            failure_config=ray.train.FailureConfig(max_failures=r.max_failures),
            callbacks=[TuneReportCallback()]),
    )
    t0 = time.time()
    try:
        trainer.fit()
    except Exception as e:
        _record_failure(spec, e, time.time() - t0)
        raise


def train_worker(spec: TrialSpec) -> None:
    """Ray Train per-worker loop: the trial's body with Ray Train's report."""
    ctx = ray.train.get_context()
    train_trial(_on_this_node(spec), ray.train, ctx.get_world_rank(), ctx.get_local_rank())


def _on_this_node(spec: TrialSpec) -> TrialSpec:
    """The spec with the node that runs it in its rows (the node of rank 0 writes them)."""
    return dataclasses.replace(spec, meta=dataclasses.replace(spec.meta, node=ray.get_runtime_context().get_node_id()))


def _report_stored(study_dir: str, trial_id: str) -> None:
    """The trial's last report is its stored row's validation metrics: Tune hands the last
    result to the searcher, so Optuna ranks the trial on exactly what the trials table says."""
    status = R.finished_trials(study_dir).get(trial_id)
    if status == TrialStatus.FAILED:
        raise RuntimeError(f"trial {trial_id} failed: see its row in the trials table")
    if status != TrialStatus.COMPLETED:
        raise RuntimeError(f"trial {trial_id} ended without writing its results")
    tune.report(stored_result(study_dir, trial_id))


def _record_failure(spec: TrialSpec, e: Exception, wall_s: float) -> None:
    """A failed trial gets its row, unless the disk is full or one of its processes died: then
    it raises instead, leaving the trial without a result row so that --resume trains it."""
    if disk_full(e):
        raise ResultsFull(f"{FULL}: trial {spec.meta.trial_id} could not write its results ({e})") from e
    if _find(e, (LeaseLost,)) is not None:  # another run has the study now: it trains this trial
        raise e
    died = _death(e)
    if died is not None:
        first = next((ln.strip() for ln in str(died).splitlines() if ln.strip()), "")
        raise ProcessDied(f"{DIED} ({type(died).__name__}: {first[:200]})") from e
    record_failed(spec.study_dir, spec.meta, f"{type(e).__name__}: {e}", 0, wall_s)


def drop_damaged_train_state(run_dir: str) -> None:
    """A rerun trial resumes from Train's checkpoint record; one truncated by a full disk would
    stop Train from starting at all, so it is removed and the trial trains from its start."""
    store = open_store(run_dir)
    try:
        json.loads(store.read_bytes("checkpoint_manager_snapshot.json"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        store.remove("checkpoint_manager_snapshot.json")


def _death(e: BaseException) -> BaseException | None:
    """The death of a process or node that ended a Train run, as Ray reports it (a worker's
    failed health check wraps the actor's death); None when the run ended by its own code."""
    return _find(e, (rex.RayActorError, rex.NodeDiedError, rex.WorkerCrashedError, rex.LocalRayletDiedError,
                     rex.OwnerDiedError, rex.OutOfMemoryError, ray.train.PreemptionError))


def _find(e: BaseException, kinds: tuple[type, ...]) -> BaseException | None:
    """The first exception of ``kinds`` in what ended a run: its causes, a worker's failed health
    check, the Train controller's failure and each worker's failure."""
    seen, todo = set(), [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, kinds):
            return x
        todo += [x.__cause__, getattr(x, "health_check_failure", None),
                 getattr(x, "controller_failure", None), *(getattr(x, "worker_failures", None) or {}).values()]
    return None
