"""The body of one trial, without Ray: a frozen ``TrialSpec`` in, the trial's tables out.

``ltray.sweep`` runs :func:`train_trial` inside a Ray Train worker (``api`` = ``ray.train``) or an
in-process Tune trial (``api`` = ``ray.tune``); anything with ``get_checkpoint``, ``report`` and
``Checkpoint.from_directory`` will do. Also here: what a finished trial tells the searcher
(:func:`stored_result`), a duplicate's wait for its original, and the rows of trials that ended
without a result. One name per layer: ``run_study`` -> ``run_trial`` -> ``train_trial`` -> ``fit``.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time

from ltray import recovery
from ltray import results as R
from ltray.core.metrics import VAL_METRICS
from ltray.data import DataConfig, load_data
from ltray.evaluate import epoch_rows, failed_trial_row, trial_tables
from ltray.experiment import Experiment, Resources, effective_recipe, method_recipe, trial_data
from ltray.methods import get_method, logits_are_balanced
from ltray.stages import StagePlan, backbone_state, get_pretrained, get_trained
from ltray.train import Recipe, TrainingFailed, fit, predict


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """Everything one trial needs, computed once from the experiment by :meth:`build`."""

    meta: R.TrialMeta
    """Who the trial is (study, id, method, knobs, seed, repeat, data and model names): every row's key."""
    study_dir: str
    """The study folder (local path or pyarrow URI) the trial writes its tables to."""
    data: DataConfig
    """This repeat's data (its own subset when the study's repeat_subsets is on)."""
    recipe: Recipe
    """The study recipe with the method's recipe_overrides; fit applies the method's own changes."""
    balanced: bool
    """Whether the trial's logits carry no training prior (from the effective recipe)."""
    stages: StagePlan
    """The shared stages this trial may build on (teacher, backbone, pre-training)."""
    resources: Resources
    """Per-worker CPUs/GPUs and report/checkpoint timing."""
    tau_max: float
    """Upper end of the exact post-hoc tau curve."""

    @classmethod
    def build(cls, exp: Experiment, study_dir: str, trial_id: str, method: str, hp: dict, repeat: int) -> TrialSpec:
        data = trial_data(exp, repeat)
        meta = meta_of(exp, trial_id, method, hp, repeat)
        m = get_method(method)
        return cls(meta=meta, study_dir=study_dir, data=data, recipe=method_recipe(exp, method),
                   balanced=logits_are_balanced(m, effective_recipe(exp, method, hp)),
                   stages=StagePlan.build(exp, study_dir, data), resources=exp.resources, tau_max=exp.posthoc.tau_max)



def _device(spec: TrialSpec, local_rank: int) -> str:
    import torch

    torch.set_num_threads(max(1, int(spec.resources.cpus_per_worker)))
    if spec.resources.gpus_per_worker > 0 and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu"


def stage_inputs(spec: TrialSpec, data, device: str) -> dict:
    """fit's keyword arguments from the trial's shared stages, plus the stage's key."""
    m, meta = get_method(spec.meta.method), spec.meta
    out = {"teacher": None, "init_backbone": None, "freeze_backbone": False, "init_head": None, "stage": ""}
    if m.teacher:
        out["teacher"], out["stage"] = get_trained(spec.stages, data, m.teacher, meta.seed, device, meta.trial_id)
    if m.backbone_from:
        base, out["stage"] = get_trained(spec.stages, data, m.backbone_from, meta.seed, device, meta.trial_id)
        out["init_backbone"], out["freeze_backbone"] = backbone_state(base), True
        if m.keep_head:
            out["init_head"] = {k: v.detach().cpu().clone() for k, v in base.head.state_dict().items()}
    elif spec.stages.pretrain:
        out["init_backbone"] = get_pretrained(spec.stages, data, meta.seed, device, meta.trial_id)
    return out


def train_trial(spec: TrialSpec, api, rank: int, local_rank: int) -> None:
    """One trial's ``fit`` and its tables; rank 0 writes them, ``trials`` last (its presence marks
    the trial finished). A trial that cannot produce a result (TrainingFailed) gets a failed row."""
    meta, device = spec.meta, _device(spec, local_rank)
    data = load_data(spec.data)
    meta = dataclasses.replace(meta, subset_hash=data.subset_hash)
    history: list[dict] = []

    def on_epoch(rows: list[dict]) -> None:  # rank 0, every epoch
        history[:] = rows

    def report(metrics: dict, ckpt_dir: str | None) -> None:
        if rank == 0:  # the curve up to what Tune has seen: a trial ASHA stops keeps all of it
            R.write_table(spec.study_dir, "epochs", meta.trial_id, R.table("epochs", epoch_rows(meta, history)))
        ck = api.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
        api.report({**metrics, "trial_epoch": metrics["epoch"] + 1}, checkpoint=ck)

    stages = stage_inputs(spec, data, device)
    stage = stages.pop("stage")
    t0, resume = time.time(), _resume_folder(api)
    try:
        res = fit(data, meta.method, meta.params, meta.model, spec.recipe, seed=meta.seed, device=device, report=report,
                  resume_from=resume, checkpoint_every_s=spec.resources.checkpoint_every_s,
                  report_every_s=spec.resources.report_every_s, on_epoch=on_epoch, **stages)
    except TrainingFailed as e:
        if rank == 0:
            row = failed_trial_row(meta, status="failed", error=f"{type(e).__name__}: {e}", epochs_run=len(history),
                                   wall_s=time.time() - t0)
            R.write_table(spec.study_dir, "trials", meta.trial_id, R.table("trials", row))
        return  # recorded; the Tune driver turns it into a failed trial without retrying
    finally:
        if resume:
            shutil.rmtree(resume, ignore_errors=True)
    if rank != 0:
        return
    tabs = trial_tables(meta, method=get_method(meta.method), balanced=spec.balanced, tau_max=spec.tau_max,
                        val_logits=res.val_logits, val_y=res.val_labels, test_logits=res.test_logits,
                        test_y=res.test_labels, train_counts=res.train_counts, history=res.history,
                        best_epoch=res.best_epoch, wall_s=time.time() - t0, taunorm=res.taunorm, stage=stage,
                        resumed_at=res.start_epoch)
    tabs.update(_method_tables(meta, stage, stages["teacher"], data, res.train_counts, device))
    for name in (*[t for t in tabs if t != "trials"], "trials"):
        R.write_table(spec.study_dir, name, meta.trial_id, R.table(name, tabs[name]))


def _resume_folder(api) -> str | None:
    """A local copy of the trial's last checkpoint (Ray may hand a remote one), or None."""
    ck = api.get_checkpoint()
    if ck is None:
        return None
    with ck.as_directory() as d:
        resume = tempfile.mkdtemp(prefix="ltray-resume-")
        shutil.copytree(d, resume, dirs_exist_ok=True)
    return resume


def _method_tables(meta: R.TrialMeta, stage: str, teacher, data, train_counts, device: str) -> dict[str, dict]:
    """The method's own extra tables (DiVE: its teacher's virtual example distribution), keyed."""
    import torch

    m = get_method(meta.method)
    teacher_logits = predict(teacher, data, "train", torch.device(device)) if teacher is not None else None
    out = {}
    for name, cols in m.extra_tables(m.hp(meta.params), teacher_logits, train_counts).items():
        n = len(next(iter(cols.values())))
        out[name] = {"study": [meta.study] * n, "trial_id": [meta.trial_id] * n, "stage": [stage] * n, **cols}
    return out


class LocalApi:
    """``train_trial``'s ``api`` without Ray (benchmarks, tests, a notebook): nothing to resume
    from, reports kept in ``reports``, checkpoints not kept."""

    class Checkpoint:
        @staticmethod
        def from_directory(path: str) -> None:
            return None

    def __init__(self):
        self.reports: list[dict] = []

    def get_checkpoint(self) -> None:
        return None

    def report(self, metrics: dict, checkpoint=None) -> None:
        self.reports.append(metrics)


# ---------------------------------------------------------------- results of finished trials

def stored_result(study_dir: str, trial_id: str) -> dict | None:
    """What Tune (and so the searcher) is told of a finished trial: its row's validation metrics."""
    t = R.load_study(study_dir, ("trials",))["trials"]
    rows = [r for r in t.to_pylist() if r["trial_id"] == trial_id and r["status"] in ("completed", "duplicate")]
    if not rows:
        return None
    return _result_of(rows[0]) | {"progress": 1.0}


def _told(study_dir: str, trial_id: str) -> dict:
    """A stopped trial's row as the result the searcher was told (no finished clock)."""
    t = R.load_study(study_dir, ("trials",))["trials"]
    return _result_of(next(r for r in t.to_pylist() if r["trial_id"] == trial_id))


def _result_of(row: dict) -> dict:
    return {k: row[k] for k in VAL_METRICS} | {"trial_epoch": row["epochs_run"], "selected_epoch": row["best_epoch"]}


def wait_for_original(study_dir: str, trial_id: str, timeout_s: float, poll_s: float = 2.0) -> dict:
    """The result of ``trial_id``, which trains the configuration a duplicate re-picked: its
    stored row, or the last result of a trial ASHA stopped. Fails at once when that trial ended
    with an error and no row (killed, a full disk), and after ``timeout_s`` when it shows no end
    at all (its driver died with it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = R.finished_trials(study_dir).get(trial_id)
        if status == "completed":
            return stored_result(study_dir, trial_id)
        if status == "stopped":  # stopped by ASHA (a study resumed since): what the searcher was told of it
            return _told(study_dir, trial_id)
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


def label_unfinished(exp: Experiment, study_dir: str) -> None:
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
        c = claims.get(tid) or (how or {}).get("config") or {}
        meta = meta_of(exp, tid, c.get("method", ""), c.get("hp", {}), c.get("repeat", 0))
        rows = [e for e in epochs if e["trial_id"] == tid]
        row = row_without_result(meta, status, why, rows, how["result"] if how else {})
        R.write_table(study_dir, "trials", tid, R.table("trials", row))


def meta_of(exp: Experiment, trial_id: str, method: str, hp: dict, repeat: int) -> R.TrialMeta:
    """A trial's key columns from the experiment (for rows written outside the trial itself)."""
    data = trial_data(exp, repeat)
    return R.TrialMeta(study=exp.name, trial_id=trial_id, method=method, params=dict(hp), seed=exp.seed + repeat,
                       repeat=repeat, dataset=data.name, rho=data.rho, model=exp.model.name,
                       num_workers=exp.resources.num_workers, objective=exp.search.objectives[0])


def row_without_result(meta: R.TrialMeta, status: str, why: str, epochs: list[dict], told: dict) -> dict:
    """A trials row for a trial with no final logits: validation values as the searcher was told
    (``told``), else of its best stored epoch, else NaN."""
    row = failed_trial_row(meta, status=status, error=why, epochs_run=len(epochs),
                           wall_s=sum(e["epoch_s"] for e in epochs))
    if all(k in told for k in VAL_METRICS):
        row.update({k: [told[k]] for k in VAL_METRICS}, best_epoch=[int(told["selected_epoch"])])
    elif any(math.isfinite(e["val_bal_acc"]) for e in epochs):  # the first best finite epoch, as fit selects
        best = max((e for e in epochs if math.isfinite(e["val_bal_acc"])), key=lambda e: e["val_bal_acc"])
        row.update({k: [best[k]] for k in VAL_METRICS}, best_epoch=[best["epoch"]])
    return row
