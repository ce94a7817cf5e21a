"""The body of one trial, without Ray: a frozen ``TrialSpec`` in, the trial's tables out.

``ltray.sweep.driver`` runs :func:`train_trial` inside a Ray Train worker (``api`` =
``ray.train``) or an in-process Tune trial (``api`` = ``ray.tune``); anything with ``report``
and ``get_checkpoint`` will do (``LocalApi`` without Ray). A trial's epoch checkpoints live in the
study (``ltray.sweep.checkpoints``), so whatever restarts it (Train, Tune, ``--resume``) goes on
from its last one. One name per layer: ``run_study`` -> ``run_trial`` -> ``train_trial`` -> ``fit``.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time

from ltray import results as R
from ltray.config import Experiment, Resources, meta_of, resolve_trial
from ltray.datasets import DataConfig, load_data
from ltray.methods import get_method
from ltray.results.rows import epoch_rows, trial_tables
from ltray.sweep import checkpoints, faults, lease
from ltray.sweep.outcomes import record_failed
from ltray.sweep.stages import StagePlan, backbone_state, get_pretrained, get_trained
from ltray.train import ModelStart, Recipe, Reporting, TrainingFailed, fit, predict


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """Everything one trial needs, computed once from the experiment by :meth:`build`."""

    meta: R.TrialMeta
    """Who the trial is (study, id, method, knobs, seed, repeat, data and model names): every row's key."""
    hp: dict
    """The method's full hyperparameters (its defaults with the trial's method knobs; no shared recipe knob)."""
    study_dir: str
    """The study folder (local path or pyarrow URI) the trial writes its tables to."""
    data: DataConfig
    """This repeat's data (its own subset when the study's repeat_subsets is on)."""
    recipe: Recipe
    """What fit trains with (``ltray.config.resolve_trial``: the method's own changes included)."""
    balanced: bool
    """Whether the trial's logits carry no training prior (from that recipe)."""
    stages: StagePlan
    """The shared stages this trial may build on (teacher, backbone, pre-training)."""
    resources: Resources
    """Per-worker CPUs/GPUs and report/checkpoint timing."""
    tau_max: float
    """Upper end of the exact post-hoc tau curve."""
    run_id: str = ""
    """The run that trains it: its rows are written only while that run holds the study's lease."""

    @classmethod
    def build(cls, exp: Experiment, study_dir: str, trial_id: str, method: str, hp: dict, repeat: int,
              run_id: str = "", config_index: int = -1) -> TrialSpec:
        plan = resolve_trial(exp, method, hp, repeat)
        return cls(meta=meta_of(exp, trial_id, method, hp, repeat, config_index), hp=plan.hp, study_dir=study_dir,
                   data=plan.data, recipe=plan.recipe, balanced=plan.balanced,
                   stages=StagePlan.build(exp, study_dir, plan.data),
                   resources=exp.resources, tau_max=exp.posthoc.tau_max, run_id=run_id)


def _device(spec: TrialSpec, local_rank: int) -> str:
    import torch

    torch.set_num_threads(max(1, int(spec.resources.cpus_per_worker)))
    if spec.resources.gpus_per_worker > 0 and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu"


def stage_inputs(spec: TrialSpec, data, device: str) -> tuple[dict, str]:
    """``ModelStart``'s fields from the trial's shared stages, and the stage's key ("" for none)."""
    m, meta = get_method(spec.meta.method), spec.meta
    out, stage = {}, ""
    if m.teacher:
        out["teacher"], stage = get_trained(spec.stages, data, m.teacher, meta.seed, device, meta.trial_id)
    if m.backbone_from:
        base, stage = get_trained(spec.stages, data, m.backbone_from, meta.seed, device, meta.trial_id)
        out["init_backbone"], out["freeze_backbone"] = backbone_state(base), True
        if m.keep_head:
            out["init_head"] = {k: v.detach().cpu().clone() for k, v in base.head.state_dict().items()}
    elif spec.stages.pretrain:
        out["init_backbone"] = get_pretrained(spec.stages, data, meta.seed, device, meta.trial_id)
    return out, stage


def train_trial(spec: TrialSpec, api, rank: int, local_rank: int) -> None:
    """One trial's ``fit`` and its tables; rank 0 writes them, ``trials`` last (its presence marks
    the trial finished). A trial that cannot produce a result (TrainingFailed) gets a failed row."""
    meta, device = spec.meta, _device(spec, local_rank)
    data = load_data(spec.data)
    meta = dataclasses.replace(meta, subset_hash=data.subset_hash)
    history: list[dict] = []

    def on_epoch(rows: list[dict]) -> None:  # rank 0, every epoch
        history[:] = rows
        if len(rows) == 2:
            faults.pause_point("mid_trial")

    def report(metrics: dict, ckpt_dir: str | None) -> None:
        if rank == 0:  # the curve up to what Tune has seen: a trial ASHA stops keeps all of it
            R.write_table(spec.study_dir, "epochs", meta.trial_id, R.table("epochs", epoch_rows(meta, history)))
            if ckpt_dir:  # kept before Tune hears of the epoch: a restart finds it, whoever restarts
                checkpoints.save(spec.study_dir, meta.trial_id, ckpt_dir)
        api.report({**metrics, "epochs_done": metrics["epoch"] + 1})  # a count; "epoch" is 0-based

    start, stage = stage_inputs(spec, data, device)
    t0, resume = time.time(), _resume_folder(spec.study_dir, meta.trial_id, api)
    faults.pause_point("trial_started")
    r = spec.resources
    try:
        res = fit(data, meta.method, spec.hp, ModelStart(name=meta.model, resume_from=resume, **start), spec.recipe,
                  seed=meta.seed, device=device, reporting=Reporting(report, r.report_every_s, r.checkpoint_every_s,
                                                                     on_epoch))
    except TrainingFailed as e:
        if rank == 0:
            lease.check(spec.study_dir, spec.run_id)
            record_failed(spec.study_dir, meta, f"{type(e).__name__}: {e}", len(history), time.time() - t0)
        return  # recorded; the Tune driver turns it into a failed trial without retrying
    finally:
        if resume:
            shutil.rmtree(resume, ignore_errors=True)
    if rank == 0:
        lease.check(spec.study_dir, spec.run_id)  # a trial that outlived its killed driver writes nothing
        _write_tables(spec, meta, res, stage, start.get("teacher"), data, device, time.time() - t0)
        checkpoints.remove(spec.study_dir, meta.trial_id)  # its rows are written: nothing to resume from
        faults.pause_point("row_written")


def _write_tables(spec: TrialSpec, meta: R.TrialMeta, res, stage: str, teacher, data, device: str,
                  wall_s: float) -> None:
    """Every table of a finished trial, ``trials`` last."""
    tabs = trial_tables(meta, balanced=spec.balanced, tau_max=spec.tau_max, val_logits=res.val_logits,
                        val_y=res.val_labels, test_logits=res.test_logits, test_y=res.test_labels,
                        train_counts=res.train_counts, history=res.history, best_epoch=res.best_epoch, wall_s=wall_s,
                        taunorm=res.taunorm, stage=stage, resumed_at=res.start_epoch, expert_logits=res.expert_logits,
                        test_views=res.test_views)
    tabs.update(_method_tables(meta, spec.hp, stage, teacher, data, res.train_counts, device))
    for name in (*[t for t in tabs if t != "trials"], "trials"):
        R.write_table(spec.study_dir, name, meta.trial_id, R.table(name, tabs[name]))


def _resume_folder(study_dir: str, trial_id: str, api) -> str | None:
    """A local copy of the trial's last checkpoint: the study's (``ltray.sweep.checkpoints``);
    else one Ray handed (a study started by ltray 0.1 kept a Train trial's there); else None."""
    folder = checkpoints.latest(study_dir, trial_id)
    ck = api.get_checkpoint() if folder is None else None
    if ck is None:
        return folder
    with ck.as_directory() as d:
        folder = tempfile.mkdtemp(prefix="ltray-resume-")
        shutil.copytree(d, folder, dirs_exist_ok=True)
    return folder


def _method_tables(meta: R.TrialMeta, hp: dict, stage: str, teacher, data, train_counts,
                   device: str) -> dict[str, dict]:
    """The method's own extra tables (DiVE: its teacher's virtual example distribution), keyed."""
    import torch

    m = get_method(meta.method)
    teacher_logits = predict(teacher, data, "train", torch.device(device)) if teacher is not None else None
    out = {}
    for name, cols in m.extra_tables(hp, teacher_logits, train_counts).items():
        n = len(next(iter(cols.values())))
        out[name] = {"study": [meta.study] * n, "trial_id": [meta.trial_id] * n, "stage": [stage] * n, **cols}
    return out


class LocalApi:
    """``train_trial``'s ``api`` without Ray (benchmarks, tests, a notebook): nothing to resume
    from but the study's checkpoints, reports kept in ``reports``."""

    def __init__(self):
        self.reports: list[dict] = []

    def get_checkpoint(self) -> None:
        return None

    def report(self, metrics: dict, checkpoint=None) -> None:
        self.reports.append(metrics)
