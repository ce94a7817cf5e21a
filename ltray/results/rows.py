"""Every table row of one trial: from its selected epoch's logits, the post-hoc rules (tau* from
the exact curve on *validation* logits; test numbers are only reported), the shifted test sets
and calibration; and the rows of trials without logits. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields

import numpy as np
import torch

from ltray.core.aggregation import aggregate, learn_weights
from ltray.core.longtail import shift_names, shifted_test_indices
from ltray.core.metrics import VAL_METRICS, expected_calibration_error, per_class_accuracy, per_class_precision, shot_accuracy
from ltray.core.posthoc import (estimate_prior_bbse, estimate_prior_em, fit_temperature, logit_adjust, logit_prior,
                                pc_adjust, tau_curve)
from ltray.results.provenance import code_version, now, versions
from ltray.results.schema import EpochRecord, TrialMeta, TrialRecord, TrialStatus

SHIFT_ADJUSTMENTS = ("none", "posthoc_tau", "pc_true", "pc_em", "pc_bbse")


def _acc(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean()) if y.size else float("nan")


def _shots(logits, y, counts):
    pc = per_class_accuracy(logits, y, counts.size)
    return pc, float(np.nanmean(pc)), shot_accuracy(pc, counts)


@dataclass(frozen=True)
class TrialLogits:
    """What a trained trial leaves for evaluation: logits of its selected epoch and the labels."""

    val_logits: np.ndarray  # (N_val, C)
    val_y: np.ndarray  # (N_val,)
    test_logits: np.ndarray  # (N_test, C)
    test_y: np.ndarray  # (N_test,)
    train_counts: np.ndarray  # (C,)


def trial_tables(meta: TrialMeta, *, balanced: bool, tau_max: float, val_logits: np.ndarray,
                 val_y: np.ndarray, test_logits: np.ndarray, test_y: np.ndarray, train_counts: np.ndarray,
                 history: list[dict], best_epoch: int, wall_s: float, taunorm: dict | None = None, stage: str = "",
                 resumed_at: int = 0, expert_logits: dict | None = None, test_views: list | None = None
                 ) -> dict[str, dict]:
    """Columns of every table for one trial that produced logits.

    ``balanced``: the trial's logits already have the training prior removed (a balanced loss,
    or class-balanced sampling; :func:`ltray.methods.logits_are_balanced`). Every post-hoc rule
    then divides out a uniform prior instead of the training one (docs/METHODS.md: no double
    counting): post-hoc LA is the identity (tau* recorded as 0) and PC adds only the target prior.
    ``expert_logits``: a multi-expert model's {"val": (N_val, E, C), "test": (N_test, E, C)}, whose
    mean are the logits; stored in the ``expert_logits`` table. ``test_views``: per epoch, two
    augmented views' test expert logits; each shifted test set then also gets SADE's test-time
    aggregation, the rule ``sade_tta`` (transductive: learnt on that set's unlabelled images).
    """
    t = TrialLogits(val_logits, val_y, test_logits, test_y, np.asarray(train_counts))
    C = t.train_counts.size
    prior = logit_prior(t.train_counts, balanced)
    curves = {"val": tau_curve(t.val_logits, t.val_y, prior, tau_max),
              "test": tau_curve(t.test_logits, t.test_y, prior, tau_max)}  # test: for display only
    tau = 0.0 if balanced else curves["val"].tau_star  # a flat curve: nothing to divide out
    adjusted = {s: logit_adjust(torch.from_numpy(getattr(t, f"{s}_logits").astype(np.float64)), prior, tau).numpy()
                for s in ("val", "test")}
    per_class, summary = _per_class(t, adjusted)
    (vb, vs, vba, _), (tb, ts, tba, tsa) = summary["val"], summary["test"]
    tau1 = logit_adjust(torch.from_numpy(t.test_logits.astype(np.float64)), prior, 1.0).numpy()
    record = TrialRecord.of(
        meta, status=TrialStatus.COMPLETED, best_epoch=best_epoch, epochs_run=len(history), val_bal_acc=vb,
        val_many=vs["many"], val_medium=vs["medium"], val_few=vs["few"], test_bal_acc=tb, test_many=ts["many"],
        test_medium=ts["medium"], test_few=ts["few"], tau_star=tau, val_bal_acc_posthoc=vba,
        test_bal_acc_posthoc=tba, test_bal_acc_posthoc_tau1=float(np.nanmean(per_class_accuracy(tau1, t.test_y, C))),
        test_many_posthoc=tsa["many"], test_medium_posthoc=tsa["medium"], test_few_posthoc=tsa["few"],
        **_taunorm_cols(taunorm), **_calibration(t), stage=stage, resumed_at=resumed_at, wall_s=wall_s, finished_at=now(),
        versions=versions(), code_version=code_version())
    key = {"study": meta.study, "trial_id": meta.trial_id}
    return {
        "trials": record.columns(),
        "epochs": epoch_rows(meta, history),
        "per_class": _with_key(per_class, key),
        "shifts": _with_key(_shift_rows(t, prior, adjusted["test"], expert_logits, test_views), key),
        "tau_curve": _with_key(_curve_rows(curves), key),
        "logits": _with_key(_logit_rows(t), key),
        **({"expert_logits": _with_key(_expert_rows(expert_logits, val_y, test_y), key)} if expert_logits else {}),
    }


def _per_class(t: TrialLogits, adjusted: dict) -> tuple[dict, dict]:
    """Per-class accuracy rows (raw and post-hoc adjusted) and each split's (balanced, per-shot,
    adjusted balanced, adjusted per-shot) summary."""
    C = t.train_counts.size
    rows = {k: [] for k in ("split", "class_id", "train_count", "accuracy", "accuracy_posthoc", "precision")}
    summary = {}
    for split in ("val", "test"):
        y = getattr(t, f"{split}_y")
        pc, bal, shots = _shots(getattr(t, f"{split}_logits"), y, t.train_counts)
        pca, bala, shotsa = _shots(adjusted[split], y, t.train_counts)
        summary[split] = (bal, shots, bala, shotsa)
        rows["split"] += [split] * C
        rows["class_id"] += list(range(C))
        rows["train_count"] += t.train_counts.tolist()
        rows["accuracy"] += pc.tolist()
        rows["accuracy_posthoc"] += pca.tolist()
        rows["precision"] += per_class_precision(getattr(t, f"{split}_logits"), y, C).tolist()
    return rows, summary


def _calibration(t: TrialLogits) -> dict:
    """Test ECE (15 bins) raw and after temperature scaling with T fitted on validation."""
    if t.val_y.size == 0 or t.test_y.size == 0:
        return {}
    temperature = fit_temperature(t.val_logits, t.val_y)
    return {"test_ece": expected_calibration_error(t.test_logits, t.test_y), "temperature": temperature,
            "test_ece_ts": expected_calibration_error(t.test_logits / temperature, t.test_y)}


def _shift_rows(t: TrialLogits, src: np.ndarray, adjusted_test: np.ndarray, experts: dict | None = None,
                views: list | None = None) -> dict:
    """Shifted test label distributions (LADE protocol) x adjustment; ``src`` is the prior inside
    the logits (uniform for balanced ones); with ``views``, also SADE's test-time aggregation."""
    C = t.train_counts.size
    test_t = torch.from_numpy(t.test_logits.astype(np.float64))
    probs = torch.softmax(test_t, 1).numpy()
    rows = {k: [] for k in ("shift", "ratio", "direction", "size", "adjustment", "accuracy", "prior_l1")}
    for name, ratio, direction in shift_names():
        idx = shifted_test_indices(t.test_y, t.train_counts, ratio, direction)
        y = t.test_y[idx]
        true = np.bincount(y, minlength=C) / max(y.size, 1)
        em = estimate_prior_em(probs[idx], src)
        # BBSE: confusion on the (balanced) validation set, predictions on the shifted set
        bbse = estimate_prior_bbse(t.val_logits.argmax(1), t.val_y, t.test_logits[idx].argmax(1), C)

        def pc(target):
            return pc_adjust(test_t[idx], src, np.clip(target, 1e-12, None)).numpy()

        options = {"none": (t.test_logits[idx], np.nan), "posthoc_tau": (adjusted_test[idx], np.nan),
                   "pc_true": (pc(true), 0.0), "pc_em": (pc(em), float(np.abs(em - true).sum())),
                   "pc_bbse": (pc(bbse), float(np.abs(bbse - true).sum()))}
        if views:
            options["sade_tta"] = (_tta_logits(experts["test"], views, idx), np.nan)
        for a in [*SHIFT_ADJUSTMENTS, *(["sade_tta"] if views else [])]:
            logits, l1 = options[a]
            for k, v in (("shift", name), ("ratio", ratio), ("direction", direction), ("size", int(idx.size)),
                         ("adjustment", a), ("accuracy", _acc(logits, y)), ("prior_l1", l1)):
                rows[k].append(v)
    return rows


def _tta_logits(experts: np.ndarray, views: list, idx: np.ndarray) -> np.ndarray:
    """The shifted set's logits under the expert weights learnt on its own (unlabelled) images."""
    w = learn_weights([(torch.from_numpy(a[idx]), torch.from_numpy(b[idx])) for a, b in views])
    return aggregate(torch.from_numpy(np.asarray(experts[idx], np.float64)), w).numpy()


def _curve_rows(curves: dict) -> dict:
    rows = {k: [] for k in ("split", "tau_lo", "tau_hi", "bal_acc")}
    for split, c in curves.items():
        rows["split"] += [split] * c.values.size
        rows["tau_lo"] += c.breakpoints[:-1].tolist()
        rows["tau_hi"] += c.breakpoints[1:].tolist()
        rows["bal_acc"] += c.values.tolist()
    return rows


def _logit_rows(t: TrialLogits) -> dict:
    rows = {k: [] for k in ("split", "index", "label", "logits")}
    for split in ("val", "test"):
        y, logits = getattr(t, f"{split}_y"), getattr(t, f"{split}_logits")
        rows["split"] += [split] * y.size
        rows["index"] += list(range(y.size))
        rows["label"] += y.tolist()
        rows["logits"] += list(logits.astype(np.float32))
    return rows


def _expert_rows(experts: dict, val_y: np.ndarray, test_y: np.ndarray) -> dict:
    rows = {k: [] for k in ("split", "expert", "index", "label", "logits")}
    for split, y in (("val", val_y), ("test", test_y)):
        out = np.asarray(experts[split], np.float32)  # (N, E, C)
        for e in range(out.shape[1]):
            rows["split"] += [split] * y.size
            rows["expert"] += [e] * y.size
            rows["index"] += list(range(y.size))
            rows["label"] += y.tolist()
            rows["logits"] += list(out[:, e])
    return rows


def _taunorm_cols(t: dict | None) -> dict:
    t = t or {}
    nan = float("nan")
    return {"taunorm_tau_star": t.get("tau_star", nan), "val_bal_acc_taunorm": t.get("val_bal_acc", nan),
            "test_bal_acc_taunorm": t.get("test_bal_acc", nan), "test_bal_acc_taunorm_tau1": t.get("test_bal_acc_tau1", nan)}


def epoch_rows(meta: TrialMeta, history: list[dict]) -> dict:
    """The ``epochs`` rows of a history (``EpochRecord`` dicts, rank 0's): a column that an older
    checkpoint's history lacks (the test columns before train.track_test) takes its default, NaN."""
    cols = {f.name: [h[f.name] if f.default is MISSING else h.get(f.name, f.default) for h in history]
            for f in fields(EpochRecord)}
    return _with_key(cols, {"study": meta.study, "trial_id": meta.trial_id})


def empty_row(meta: TrialMeta, *, status: TrialStatus, error: str, epochs_run: int, wall_s: float) -> dict:
    """A trials row for a trial that produced no final logits (failed, stopped, interrupted):
    validation and test values NaN unless the caller fills them in."""
    return TrialRecord.of(meta, status=status, error=error[:2000], epochs_run=epochs_run, wall_s=wall_s,
                          finished_at=now(), versions=versions(), code_version=code_version()).columns()


def row_without_result(meta: TrialMeta, status: TrialStatus, why: str, epochs: list[dict], told: dict) -> dict:
    """A trials row for a trial with no final logits: validation values as the searcher was told
    (``told``), else of its best stored epoch, else NaN."""
    row = empty_row(meta, status=status, error=why, epochs_run=len(epochs), wall_s=sum(e["epoch_s"] for e in epochs))
    if all(k in told for k in VAL_METRICS):
        row.update({k: [told[k]] for k in VAL_METRICS}, best_epoch=[int(told["selected_epoch"])])
    elif any(math.isfinite(e["val_bal_acc"]) for e in epochs):  # the first best finite epoch, as fit selects
        best = max((e for e in epochs if math.isfinite(e["val_bal_acc"])), key=lambda e: e["val_bal_acc"])
        row.update({k: [best[k]] for k in VAL_METRICS}, best_epoch=[best["epoch"]])
    return row


def _with_key(cols: dict, key: dict) -> dict:
    n = len(next(iter(cols.values()))) if cols else 0
    return {**{k: [v] * n for k, v in key.items()}, **cols}
