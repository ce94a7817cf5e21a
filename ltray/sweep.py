"""Run a study: Ray Tune + Optuna over trials, each trial a Ray Train (DDP) run of ``fit``.

    python -m ltray.sweep experiments/quickstart.py [--set key=value ...] [--name NAME]
        [--results DIR] [--resume] [--address ADDR]

One of the two modules that know Ray (with ``ltray.submit``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from ltray import recovery
from ltray import results as R
from ltray.core.metrics import VAL_METRICS
from ltray.data import resolve
from ltray.errors import LtrayError
from ltray.experiment import (Experiment, apply_overrides, describe_fields, effective_recipe, load_experiment,
                              method_recipe, to_dict, trial_data, validate)
from ltray.methods import get_method

# The Tune function that drives one trial only waits on its TorchTrainer: it reserves no CPU (so
# trials pack on the workers' CPUs) but its ~250 MB process, which also makes Ray's bundle non-empty.
DRIVER_RESOURCES = {"cpu": 0, "memory": 256 * 2**20}


# ---------------------------------------------------------------- search space

class _Prefixed:
    """Hands a method's define-by-run space an Optuna trial whose names carry the method, so
    knobs of different methods never share an Optuna parameter ("lade.lam" vs "equalization.lam")."""

    def __init__(self, trial, method: str, ranges: dict | None = None):
        self._trial, self._prefix, self._ranges = trial, method + ".", ranges or {}

    def _bounds(self, name, low, high):
        return self._ranges.get(self._prefix + name, (low, high))

    def suggest_float(self, name, low, high, **kwargs):
        return self._trial.suggest_float(self._prefix + name, *self._bounds(name, low, high), **kwargs)

    def suggest_int(self, name, low, high, **kwargs):
        lo, hi = self._bounds(name, low, high)
        return self._trial.suggest_int(self._prefix + name, int(lo), int(hi), **kwargs)

    def suggest_categorical(self, name, *args, **kwargs):
        return self._trial.suggest_categorical(self._prefix + name, *args, **kwargs)


class _Defaults:
    """A stand-in trial that answers every suggestion with the method's default (and checks it
    lies in the declared range): the first trials run each method as published."""

    def __init__(self, method):
        self.m, self.params = method, {}

    def _get(self, name, ok):
        v = self.m.defaults[name]
        if not ok(v):
            raise LtrayError(f"method {self.m.name}: default {name}={v} lies outside its search range")
        self.params[f"{self.m.name}.{name}"] = v
        return v

    def suggest_float(self, name, low, high, **kw):
        return self._get(name, lambda v: low <= v <= high)

    def suggest_int(self, name, low, high, **kw):
        return self._get(name, lambda v: low <= v <= high)

    def suggest_categorical(self, name, choices):
        return self._get(name, lambda v: v in choices)


class Space:
    """Define-by-run: pick the method, then sample only that method's knobs. A class, not a
    closure, because Tune pickles the searcher (and so this) into its experiment checkpoint."""

    def __init__(self, methods: tuple[str, ...], ranges: dict | None = None):
        self.methods, self.ranges = list(methods), dict(ranges or {})

    def __call__(self, trial) -> None:
        method = trial.suggest_categorical("method", self.methods)
        get_method(method).space(_Prefixed(trial, method, self.ranges))


def default_points(methods: tuple[str, ...]) -> list[dict]:
    out = []
    for name in methods:
        d = _Defaults(get_method(name))
        get_method(name).space(d)
        out.append({"method": name, **d.params})
    return out


def split_config(config: dict) -> tuple[str, dict]:
    """A Tune config (flat dict) -> (method, its hyperparameters without the prefix)."""
    method = config["method"]
    pre = method + "."
    return method, {k[len(pre):]: v for k, v in config.items() if k.startswith(pre)}


# ---------------------------------------------------------------- one trial

def train_worker(cfg: dict) -> None:
    """Ray Train per-worker loop: ``fit`` with Ray's report; rank 0 writes the trial's tables."""
    import ray.train

    ctx = ray.train.get_context()
    run_fit(cfg, ray.train, ctx.get_world_rank(), ctx.get_local_rank())


def run_fit(cfg: dict, api, rank: int, local_rank: int) -> None:
    """One trial's ``fit`` and its tables. ``api`` is ``ray.train`` in a Train worker or
    ``ray.tune`` in an in-process trial: both give get_checkpoint, report and Checkpoint."""
    import torch

    from ltray.data import load_data
    from ltray.evaluate import epoch_rows, failed_trial_row, trial_tables
    from ltray.methods import logits_are_balanced
    from ltray.train import TrainingFailed, fit

    exp: Experiment = cfg["experiment"]
    torch.set_num_threads(max(1, int(exp.resources.cpus_per_worker)))
    device = "cpu"
    if exp.resources.gpus_per_worker > 0 and torch.cuda.is_available():
        device = f"cuda:{local_rank % torch.cuda.device_count()}"
    data = load_data(trial_data(exp, cfg["repeat"]))
    method = get_method(cfg["method"])
    study, trial_id, study_dir = exp.name, cfg["trial_id"], cfg["study_dir"]
    history: list[dict] = []

    def on_epoch(rows: list[dict]) -> None:  # rank 0, every epoch
        history[:] = rows

    def report(metrics: dict, ckpt_dir: str | None) -> None:
        if rank == 0:  # the curve up to what Tune has seen: a trial ASHA stops keeps all of it
            R.write_table(study_dir, "epochs", trial_id, R.table("epochs", epoch_rows(study, trial_id, history)))
        ck = api.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
        api.report({**metrics, "trial_epoch": metrics["epoch"] + 1}, checkpoint=ck)

    from ltray.stages import backbone_state, get_pretrained, get_trained

    teacher, stage, init, freeze = None, "", None, False
    if method.teacher:
        teacher, stage = get_trained(study_dir, exp, data, method.teacher, cfg["seed"], device, trial_id)
    if method.backbone_from:
        base, stage = get_trained(study_dir, exp, data, method.backbone_from, cfg["seed"], device, trial_id)
        init, freeze = backbone_state(base), True
    elif exp.pretrain:
        init = get_pretrained(study_dir, exp, data, cfg["seed"], device, trial_id)
    resume = None
    ck = api.get_checkpoint()
    t0 = time.time()
    common = dict(study=study, trial_id=trial_id, seed=cfg["seed"], repeat=cfg["repeat"], exp=exp,
                  subset_hash=data.subset_hash)
    try:
        if ck is not None:
            with ck.as_directory() as d:
                resume = tempfile.mkdtemp(prefix="ltray-resume-")
                shutil.copytree(d, resume, dirs_exist_ok=True)
        res = fit(data, method, cfg["hp"], exp.model.name, method_recipe(exp, method.name), seed=cfg["seed"],
                  device=device, report=report, resume_from=resume, teacher=teacher, init_backbone=init, freeze_backbone=freeze,
                  checkpoint_every_s=exp.resources.checkpoint_every_s, report_every_s=exp.resources.report_every_s,
                  on_epoch=on_epoch)
    except TrainingFailed as e:
        if rank == 0:
            row = failed_trial_row(method=method.name, hp=cfg["hp"], status="failed", error=f"{type(e).__name__}: {e}",
                                   epochs_run=len(history), wall_s=time.time() - t0, **common)
            R.write_table(study_dir, "trials", trial_id, R.table("trials", row))
        return  # recorded; the Tune driver turns it into a failed trial without retrying
    finally:
        if resume:
            shutil.rmtree(resume, ignore_errors=True)
    if rank == 0:
        tabs = trial_tables(method=method, hp=cfg["hp"], val_logits=res.val_logits, val_y=res.val_labels,
                            test_logits=res.test_logits, test_y=res.test_labels, train_counts=res.train_counts,
                            history=res.history, best_epoch=res.best_epoch, wall_s=time.time() - t0,
                            taunorm=res.taunorm, stage=stage, resumed_at=res.start_epoch,
                            balanced=logits_are_balanced(method, effective_recipe(exp, method.name, cfg["hp"])), **common)
        if teacher is not None:
            from ltray.evaluate import virtual_rows
            from ltray.train import predict

            t_logits = predict(teacher, data, "train", torch.device(device))
            R.write_table(study_dir, "virtual", trial_id, R.table("virtual", virtual_rows(
                study, trial_id, stage, t_logits, res.train_counts, cfg["hp"]["tau"], cfg["hp"]["power"])))
        # trials last: its presence marks the trial as finished
        for name in ("epochs", "per_class", "shifts", "tau_curve", "logits", "trials"):
            R.write_table(study_dir, name, trial_id, R.table(name, tabs[name]))


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
    done = _stored_result(study_dir, trial_id)
    if done is not None:  # finished before an interruption: report its stored result, never retrain
        tune.report(done)
        return
    recovery.check_space(study_dir, exp.resources.min_free_mb)
    repeat = int(config.get("__trial_index__", 0))
    seed = exp.seed + repeat
    original = recovery.claim(study_dir, method, hp, seed, repeat, trial_id)
    if original != trial_id:  # TPE re-picked a configuration already trained: same result, no training
        result = _wait_for(study_dir, original, exp.search.duplicate_wait_s)
        row = R.load_study(study_dir, ("trials",))["trials"]
        row = row.filter(pa.compute.equal(row["trial_id"], original)).to_pydict()
        if row["trial_id"]:
            row.update(trial_id=[trial_id], status=["duplicate"], error=[f"same configuration as {original}"])
        else:  # the original was stopped by ASHA (its row comes at the study's end): the same stop
            row = _row_without_result(exp, study_dir, trial_id, {"method": method, "hp": hp, "seed": seed,
                                                                 "repeat": repeat}, "duplicate",
                                      f"same configuration as {original}, which ASHA stopped early", [], result)
        R.write_table(study_dir, "trials", trial_id, R.table("trials", row))
        tune.report(result)
        return
    r = exp.resources
    cfg = {"experiment": exp, "method": method, "hp": hp, "seed": seed, "repeat": repeat, "trial_id": trial_id,
           "study_dir": study_dir}
    t0 = time.time()
    if r.in_process:
        try:
            run_fit(cfg, tune, 0, 0)
        except Exception as e:  # a Python error repeats on retry; a killed process never gets here
            _record_failure(exp, study_dir, trial_id, method, hp, seed, repeat, e, time.time() - t0)
            raise
        _finish(study_dir, trial_id)
        return
    recovery.drop_damaged_train_state(os.path.join(study_dir, "ray", f"train-{trial_id}"))
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=cfg,
        scaling_config=ray.train.ScalingConfig(
            num_workers=r.num_workers, use_gpu=r.gpus_per_worker > 0,
            resources_per_worker={"CPU": r.cpus_per_worker, **({"GPU": r.gpus_per_worker} if r.gpus_per_worker else {})}),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}", storage_path=os.path.join(study_dir, "ray"),
            failure_config=ray.train.FailureConfig(max_failures=r.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()]),
    )
    try:
        trainer.fit()
    except Exception as e:
        _record_failure(exp, study_dir, trial_id, method, hp, seed, repeat, e, time.time() - t0)
        raise
    _finish(study_dir, trial_id)


def _finish(study_dir: str, trial_id: str) -> None:
    """The trial's last report is its stored row's validation metrics: Tune hands the last
    result to the searcher, so Optuna ranks the trial on exactly what the trials table says."""
    from ray import tune

    _check_finished(study_dir, trial_id)
    tune.report(_stored_result(study_dir, trial_id))


def _record_failure(exp, study_dir, trial_id, method, hp, seed, repeat, e: Exception, wall_s: float) -> None:
    """A failed trial gets its row, unless the disk is full: then it raises ResultsFull instead,
    leaving the trial unrecorded so that --resume trains it."""
    if recovery.disk_full(e):
        raise recovery.ResultsFull(f"{recovery.FULL}: trial {trial_id} could not write its results ({e})") from e
    from ltray.evaluate import failed_trial_row

    row = failed_trial_row(study=exp.name, trial_id=trial_id, method=method, hp=hp, seed=seed, repeat=repeat,
                           exp=exp, subset_hash="", status="failed", error=f"{type(e).__name__}: {e}", epochs_run=0,
                           wall_s=wall_s)
    R.write_table(study_dir, "trials", trial_id, R.table("trials", row))


def _check_finished(study_dir: str, trial_id: str) -> None:
    status = R.finished_trials(study_dir).get(trial_id)
    if status == "failed":
        raise RuntimeError(f"trial {trial_id} failed: see its row in the trials table")
    if status != "completed":
        raise RuntimeError(f"trial {trial_id} ended without writing its results")


def _wait_for(study_dir: str, trial_id: str, timeout_s: float, poll_s: float = 2.0) -> dict:
    """The result of ``trial_id``, which trains the configuration a duplicate re-picked: its
    stored row, or the last result of a trial ASHA stopped. Fails at once when that trial ended
    with an error and no row (killed, a full disk), and after
    ``timeout_s`` when it shows no end at all (its driver died with it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = R.finished_trials(study_dir).get(trial_id)
        if status == "completed":
            return _stored_result(study_dir, trial_id)
        if status is not None:
            raise RuntimeError(f"the trial {trial_id} with the same configuration ended {status}")
        ended = recovery.outcomes(study_dir).get(trial_id)
        if ended is not None and ended["how"] == "complete" and ended["result"]:
            return ended["result"]  # stopped by ASHA: what the searcher was told of it
        if ended is not None:
            why = ended["error"][:300] or "an error"
            raise RuntimeError(f"the trial {trial_id} with the same configuration ended without a result ({why}); "
                               "--resume trains it again")
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {timeout_s:g} s (search.duplicate_wait_s) for trial {trial_id}, which trains "
                               "the same configuration, and it has neither a result nor an end; --resume trains it again")
        time.sleep(poll_s)


def _stored_result(study_dir: str, trial_id: str) -> dict | None:
    """What Tune (and so Optuna) is told of a finished trial: its row's validation metrics."""
    t = R.load_study(study_dir, ("trials",))["trials"]
    rows = [r for r in t.to_pylist() if r["trial_id"] == trial_id and r["status"] in ("completed", "duplicate")]
    if not rows:
        return None
    r = rows[0]
    return {k: r[k] for k in VAL_METRICS} | {"trial_epoch": r["epochs_run"], "selected_epoch": r["best_epoch"],
                                            "progress": 1.0}


# ---------------------------------------------------------------- the study

def _concurrency(exp: Experiment, cluster: dict) -> int:
    r = exp.resources
    if r.max_concurrent_trials:
        return r.max_concurrent_trials
    per_cpu = r.num_workers * r.cpus_per_worker
    n = math.floor(cluster.get("CPU", 1) / per_cpu + 1e-9)
    if r.gpus_per_worker:
        n = min(n, math.floor(cluster.get("GPU", 0) / (r.num_workers * r.gpus_per_worker) + 1e-9))
    return max(1, n)


def _progress_callback(metric: str, study_dir: str):
    from ray import tune

    tune_dir = os.path.join(study_dir, "ray", "tune")

    class Progress(tune.Callback):
        """A line per trial result, one per finished or failed trial; records how Tune ended each
        trial (``recovery.mark_ended``); keeps a whole copy of Tune's state (when a trial starts or
        ends, and at most every 10 s in between)."""

        last_backup = 0.0

        def backup(self, every_s: float = 0.0):
            if time.monotonic() - self.last_backup >= every_s:
                recovery.backup_tune_state(tune_dir)
                self.last_backup = time.monotonic()

        def on_trial_start(self, iteration, trials, trial, **info):
            self.backup()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.backup(every_s=10.0)
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
            recovery.mark_ended(study_dir, trial.trial_id, "complete", result={k: last[k] for k in keep if k in last})
            self.backup()

        def on_trial_error(self, iteration, trials, trial, **info):
            try:  # Tune's error file lives in the driver's local session folder, not the results disk
                error = open(trial.error_file).read()
            except (OSError, TypeError):
                error = ""
            why = f"{recovery.FULL}; --resume runs it again" if recovery.FULL in error else "see the trials table"
            print(f"[{trial.trial_id}] FAILED: {_knobs(trial.config)} ({why})", flush=True)
            recovery.mark_ended(study_dir, trial.trial_id, "error", error=_last_line(error))

    return Progress()


def _last_line(traceback_text: str) -> str:
    """The exception line of a traceback (Ray's error files end with it), at most 500 characters."""
    lines = [ln.strip() for ln in traceback_text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def _knobs(config: dict) -> str:
    method, hp = split_config(config)
    return method + (" " + " ".join(f"{k}={v:.4g}" for k, v in hp.items()) if hp else "")


def _searcher(exp: Experiment, study_dir: str):
    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    s = exp.search
    two = len(s.objectives) == 2
    kind = s.sampler if s.sampler != "auto" else ("nsga2" if two else "tpe")
    sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=s.seed),
               "random": lambda: optuna.samplers.RandomSampler(seed=s.seed),
               "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=s.seed)}[kind]()
    storage = optuna.storages.RDBStorage(f"sqlite:///{os.path.join(study_dir, 'optuna.db')}")
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

    study_dir = os.path.abspath(study_dir)
    tune_path = os.path.join(study_dir, "ray")
    r = exp.resources
    # an in-process trial holds its worker's resources itself; a Train driver only waits
    own = {"cpu": r.cpus_per_worker, "gpu": r.gpus_per_worker} if r.in_process else DRIVER_RESOURCES
    trainable = tune.with_resources(tune.with_parameters(run_trial, exp=exp, study_dir=study_dir), own)
    metric = exp.search.objectives[0]
    if resume:
        recovery.release_stale_claims(study_dir)
        recovery.repair_tune_state(os.path.join(tune_path, "tune"))
    if resume and tune.Tuner.can_restore(os.path.join(tune_path, "tune")):
        # errored trials run again: a trial stopped by a full disk left no row; one recorded as
        # failed (diverged) re-raises at once in run_trial without training
        tuner = tune.Tuner.restore(os.path.join(tune_path, "tune"), trainable=trainable, resume_unfinished=True,
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
                search_alg=_searcher(exp, study_dir), scheduler=scheduler, num_samples=exp.search.num_samples * exp.repeats,
                reuse_actors=True,  # a trial's driver process is kept for the next: ~3 s a trial here
                max_concurrent_trials=_concurrency(exp, ray.cluster_resources()),
                metric=None if len(exp.search.objectives) == 2 else metric, mode=None if len(exp.search.objectives) == 2 else "max"),
            run_config=tune.RunConfig(name="tune", storage_path=tune_path, verbose=0,
                                      callbacks=[_progress_callback(metric, study_dir)],
                                      # Train restarts its own workers; an in-process trial is
                                      # restarted by Tune, from its last checkpoint
                                      failure_config=tune.FailureConfig(max_failures=r.max_failures if r.in_process else 0),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
        )
    expected = exp.search.num_samples * exp.repeats
    try:
        errors = [r.error for r in tuner.fit() if r.error is not None]
        _mark_stopped(exp, study_dir)
    except Exception as e:  # a full disk breaks Tune's own state files and error pickles too
        if not (recovery.disk_full(e) or _low_space(exp, study_dir)):
            raise
        _raise_full(study_dir, expected)
    done = len(R.finished_trials(study_dir))
    if (any(recovery.disk_full(e) for e in errors) or _low_space(exp, study_dir)) and done < expected:
        _raise_full(study_dir, expected)
    if done < expected:
        print(f"warning: {expected - done} of {expected} trials have no result; see the errors above", flush=True)
    return study_dir


def _low_space(exp: Experiment, study_dir: str) -> bool:
    return recovery.free_mb(study_dir) < max(exp.resources.min_free_mb, 1.0)


def _raise_full(study_dir: str, expected: int) -> None:
    free = recovery.free_mb(study_dir)
    done = len(R.finished_trials(study_dir))
    raise LtrayError(f"{recovery.FULL} under {study_dir} ({free:.0f} MiB free now): {expected - done} of {expected} trials "
                     f"did not finish. The {done} finished are kept; free space, then run the same command with --resume")


def _mark_stopped(exp: Experiment, study_dir: str) -> None:
    """Every trial without a trials row (it has epochs, or Tune ended it) gets a row saying what
    happened to it, from how Tune ended it (``recovery.outcomes``): stopped early by ASHA (ended
    without error; its values are the last result Tune gave the searcher), cut off by an error
    that left no row (a killed process, a full disk), or cut off with the sweep itself (no end
    recorded; ``--resume`` ran its configuration again as another trial)."""
    tabs = R.load_study(study_dir, ("trials", "epochs"))
    done = set(tabs["trials"].column("trial_id").to_pylist())
    epochs = tabs["epochs"].to_pylist()
    claims, ended = recovery.claims(study_dir), recovery.outcomes(study_dir)
    for tid in sorted(({e["trial_id"] for e in epochs} | set(ended)) - done):
        how = ended.get(tid)
        if how is None:
            status, why = "interrupted", "cut off with the sweep before it finished; --resume ran its configuration again"
        elif how["how"] == "complete":
            status = "stopped"
            why = f"stopped early by ASHA at {how['result'].get('progress', float('nan')):.0%} of its epochs"
        else:
            status, why = "interrupted", f"ended without a result: {how['error'] or 'unknown error'}"
        rows = [e for e in epochs if e["trial_id"] == tid]
        row = _row_without_result(exp, study_dir, tid, claims.get(tid, {}), status, why, rows,
                                  how["result"] if how else {})
        R.write_table(study_dir, "trials", tid, R.table("trials", row))


def _row_without_result(exp: Experiment, study_dir: str, trial_id: str, claim: dict, status: str, why: str,
                        epochs: list[dict], told: dict) -> dict:
    """A trials row for a trial with no final logits: validation values as the searcher was told
    (``told``), else of its best stored epoch, else NaN."""
    from ltray.evaluate import failed_trial_row

    row = failed_trial_row(study=exp.name, trial_id=trial_id, method=claim.get("method", ""), hp=claim.get("hp", {}),
                           seed=claim.get("seed", exp.seed), repeat=claim.get("repeat", 0), exp=exp, subset_hash="",
                           status=status, error=why, epochs_run=len(epochs), wall_s=sum(e["epoch_s"] for e in epochs))
    if all(k in told for k in VAL_METRICS):
        row.update({k: [told[k]] for k in VAL_METRICS}, best_epoch=[int(told["selected_epoch"])])
    elif epochs:
        best = max(epochs, key=lambda e: e["val_bal_acc"])
        row.update({k: [best[k]] for k in VAL_METRICS}, best_epoch=[best["epoch"]])
    return row


# ---------------------------------------------------------------- CLI

def _local_resources() -> dict:
    import torch

    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def _write_study_files(exp: Experiment, source: str, study_dir: str) -> None:
    os.makedirs(study_dir, exist_ok=True)
    shutil.copyfile(source, os.path.join(study_dir, "experiment.py"))
    with open(os.path.join(study_dir, "experiment.json"), "w") as f:
        json.dump(to_dict(exp), f, indent=2, default=list)
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    with open(os.path.join(study_dir, "requirements.txt"), "w") as f:
        f.write(freeze)


def prepare(argv: list[str] | None = None) -> tuple[Experiment, argparse.Namespace, str]:
    """Parse the command line and validate everything; nothing is written and Ray is not started."""
    p = argparse.ArgumentParser(
        prog="python -m ltray.sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a study of long-tail methods: Ray Tune + Optuna over Ray Train trials.",
        epilog="Experiment fields (override any with --set dotted.name=value):\n" + "\n".join(describe_fields()))
    p.add_argument("experiment", help="experiment file defining EXPERIMENT = Experiment(...)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override fields by dotted path, e.g. --set train.epochs=3 methods=ce,lade")
    p.add_argument("--name", help="study name (default: the experiment's name)")
    p.add_argument("--results", default="results", help="folder (or pyarrow URI) holding studies (default: results)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study")
    p.add_argument("--address", help="Ray cluster to connect to (default: start a local one)")
    a = p.parse_args(argv)
    exp = apply_overrides(load_experiment(a.experiment), a.set)
    if a.name:
        exp = dataclasses.replace(exp, name=a.name)
    # inside a Ray Job (RAY_ADDRESS set) or with --address, the cluster's resources are checked
    # once connected; locally they are checked now, before Ray starts
    on_cluster = bool(a.address or os.environ.get("RAY_ADDRESS"))
    validate(exp, None if on_cluster else _local_resources())
    # dataset defaults made explicit: experiment.json records what the trials use (digits-lt's 15
    # validation images per class, not a 0 or a number it cannot hold)
    exp = dataclasses.replace(exp, data=resolve(exp.data))
    study_dir = os.path.join(a.results, exp.name)
    if "://" not in a.results:
        _check_writable(a.results, exp.resources.min_free_mb)
    existing = R.finished_trials(study_dir) if os.path.isdir(study_dir) else {}
    if existing and not a.resume:
        raise LtrayError(f"{study_dir} already holds {len(existing)} trials; pass --resume to continue it or "
                         "--name to start a new study (nothing was changed)")
    if a.resume:
        if not os.path.isdir(study_dir):
            raise LtrayError(f"--resume: no study at {study_dir}")
        saved = os.path.join(study_dir, "experiment.json")
        if os.path.isfile(saved) and json.load(open(saved)) != json.loads(json.dumps(to_dict(exp), default=list)):
            raise LtrayError(f"--resume: the experiment differs from the one {study_dir} was started with "
                             f"({saved}); resume with the same file and --set values")
    return exp, a, study_dir


def _check_writable(results: str, min_free_mb: float = 0.0) -> None:
    """Fail before Ray starts if results cannot be written there (read-only, no space, a file)."""
    probe = os.path.join(results, f".ltray-write-probe-{os.getpid()}")
    try:
        os.makedirs(results, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise LtrayError(f"cannot write results under {results}: {e.strerror or e}. Fix the folder (permissions, "
                         "free space) or pass --results elsewhere; a study stopped this way resumes with --resume") from None
    finally:
        try:
            os.remove(probe)
        except OSError:
            pass
    try:
        recovery.check_space(results, min_free_mb)
    except recovery.ResultsFull as e:
        raise LtrayError(f"{e}. Free space or pass --results elsewhere; a study stopped this way resumes with "
                         "--resume") from None


def main(argv: list[str] | None = None) -> int:
    try:
        exp, a, study_dir = prepare(argv)
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import ray

    # Ray's own per-worker logging would bury the one line per trial result printed below;
    # errors still reach the trials table and the worker logs under the Ray session folder.
    ray.init(address=a.address, log_to_driver=False, logging_level="WARNING", runtime_env=_runtime_env())
    try:
        if a.address or os.environ.get("RAY_ADDRESS"):
            validate(exp, ray.cluster_resources())
        if not a.resume:
            _write_study_files(exp, a.experiment, study_dir)
        print(f"study {exp.name}: {exp.search.num_samples * exp.repeats} trials of {', '.join(exp.methods)} on "
              f"{exp.data.name} (rho={exp.data.rho:g}), results in {study_dir}", flush=True)
        run_study(exp, study_dir, resume=a.resume)
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        ray.shutdown()
    print_summary(study_dir)
    return 0


# Ray Train's controller takes one result off a worker's queue (size 1) per poll, 2 s apart by
# default, so every report after the first waited ~1.9 s here. Reports are >= report_every_s
# (2 s) apart, so a 1 s poll never makes one wait; each poll is a remote call to every worker
# (with 0.25 s and four trials at once, top showed each controller and helper actor near 7% of a core).
POLL_INTERVAL_S = "1.0"


def _runtime_env() -> dict:
    """Job-wide settings for the actors Ray Train starts (a value already set by the user wins)."""
    name = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
    return {} if name in os.environ else {"env_vars": {name: POLL_INTERVAL_S}}


def print_summary(study_dir: str) -> None:
    """Per method, the configuration ``report.best_configurations`` selects (best mean validation
    balanced accuracy over its seeds), with its seeds' mean: the same rows as ``ltray.report``
    and the dashboard."""
    from ltray.report import best_configurations

    t = R.load_study(study_dir, ("trials",))["trials"]
    print(f"\n{t.num_rows} trials in {study_dir}")
    print(f"{'method':<18} {'seeds':>5} {'val':>7} {'test':>7} {'+post-hoc':>9} {'many':>7} {'medium':>7} {'few':>7}")
    cols = ("val_bal_acc", "test_bal_acc", "test_bal_acc_posthoc", "test_many", "test_medium", "test_few")
    for method, rows in best_configurations(t).items():
        mean = {c: sum(r[c] for r in rows) / len(rows) for c in cols}
        print(f"{method:<18} {len(rows):>5} " + " ".join(f"{mean[c] * 100:{w}.2f}" for c, w in zip(cols, (7, 7, 9, 7, 7, 7))))
    for r in t.to_pylist():
        if r["status"] != "completed":
            print(f"  {r['trial_id']} {r['status']}: {r['error'][:200]}")
    print("(per method: the configuration with the best mean validation balanced accuracy over its seeds; "
          "mean over those seeds; ltray.report adds 95% intervals)")
    print(f"\nLook at them: python -m dashboard --results {os.path.dirname(study_dir) or '.'}")


if __name__ == "__main__":
    # run the module's importable copy: Tune pickles the search space and searcher by reference,
    # and a class from __main__ would not be the same object after ``--resume`` restores them
    from ltray.sweep import main as _main

    sys.exit(_main())
