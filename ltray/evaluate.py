"""After training: post-hoc rules and every table row of one trial (pure: no Ray, no I/O).

tau* comes from the exact tau curve on *validation* logits; test numbers are only reported.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ltray.core.longtail import shift_names, shifted_test_indices
from ltray.core.metrics import (balanced_accuracy, expected_calibration_error, per_class_accuracy,
                                per_class_precision, shot_accuracy)
from ltray.core.posthoc import (estimate_prior_bbse, estimate_prior_em, fit_temperature, logit_adjust, pc_adjust,
                                 tau_curve, tau_normalize)
from ltray import results as R
from ltray.methods import Method

SHIFT_ADJUSTMENTS = ("none", "posthoc_tau", "pc_true", "pc_em", "pc_bbse")


def versions() -> str:
    import importlib.metadata as md

    out = {}
    for pkg in ("ltray", "torch", "ray", "optuna", "pyarrow", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return json.dumps(out, sort_keys=True)


@functools.cache
def code_version() -> str:
    """Which ltray produced a row: ``<version>+git.<commit>[.dirty];src=<hash>``. The commit
    (with .dirty for uncommitted changes) when the package lives in a git checkout; the source
    hash (sha256 of every ltray .py file, 12 hex digits) always, so a copy without .git (a Ray
    Job's working_dir) is still identified."""
    import importlib.metadata as md
    import subprocess

    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes() + b"\0")
    try:
        version = md.version("ltray")
    except md.PackageNotFoundError:
        version = "unknown"
    git = ""
    try:
        run = dict(cwd=pkg, capture_output=True, text=True, timeout=10)
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], **run)
        if head.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], **run).stdout.strip()
            git = f"+git.{head.stdout.strip()}" + (".dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):  # no git on this node: the source hash still says which code
        pass
    return f"{version}{git};src={h.hexdigest()[:12]}"


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


def trial_tables(meta: R.TrialMeta, *, method: Method, balanced: bool, tau_max: float, val_logits: np.ndarray,
                 val_y: np.ndarray, test_logits: np.ndarray, test_y: np.ndarray, train_counts: np.ndarray,
                 history: list[dict], best_epoch: int, wall_s: float, taunorm: dict | None = None, stage: str = "",
                 resumed_at: int = 0) -> dict[str, dict]:
    """Columns of every table for one trial that produced logits.

    ``balanced``: the trial's logits already have the training prior removed (a balanced loss,
    or class-balanced sampling; :func:`ltray.methods.logits_are_balanced`). Every post-hoc rule
    then divides out a uniform prior instead of the training one (METHODS.md: no double
    counting): post-hoc LA is the identity (tau* recorded as 0) and PC adds only the target prior.
    """
    t = TrialLogits(val_logits, val_y, test_logits, test_y, np.asarray(train_counts))
    C = t.train_counts.size
    prior = np.full(C, 1.0 / C) if balanced else t.train_counts / t.train_counts.sum()  # the prior inside the logits
    curves = {"val": tau_curve(t.val_logits, t.val_y, prior, tau_max),
              "test": tau_curve(t.test_logits, t.test_y, prior, tau_max)}  # test: for display only
    tau = 0.0 if balanced else curves["val"].tau_star  # a flat curve: nothing to divide out
    adjusted = {s: logit_adjust(torch.from_numpy(getattr(t, f"{s}_logits").astype(np.float64)), prior, tau).numpy()
                for s in ("val", "test")}
    per_class, summary = _per_class(t, adjusted)
    (vb, vs, vba, _), (tb, ts, tba, tsa) = summary["val"], summary["test"]
    tau1 = logit_adjust(torch.from_numpy(t.test_logits.astype(np.float64)), prior, 1.0).numpy()
    record = R.TrialRecord.of(
        meta, status="completed", best_epoch=best_epoch, epochs_run=len(history), val_bal_acc=vb,
        val_many=vs["many"], val_medium=vs["medium"], val_few=vs["few"], test_bal_acc=tb, test_many=ts["many"],
        test_medium=ts["medium"], test_few=ts["few"], tau_star=tau, val_bal_acc_posthoc=vba,
        test_bal_acc_posthoc=tba, test_bal_acc_posthoc_tau1=float(np.nanmean(per_class_accuracy(tau1, t.test_y, C))),
        test_many_posthoc=tsa["many"], test_medium_posthoc=tsa["medium"], test_few_posthoc=tsa["few"],
        **_taunorm_cols(taunorm), **_calibration(t), stage=stage, resumed_at=resumed_at, wall_s=wall_s, finished_at=_now(),
        versions=versions(), code_version=code_version())
    key = {"study": meta.study, "trial_id": meta.trial_id}
    return {
        "trials": record.columns(),
        "epochs": epoch_rows(meta, history),
        "per_class": _with_key(per_class, key),
        "shifts": _with_key(_shift_rows(t, prior, adjusted["test"]), key),
        "tau_curve": _with_key(_curve_rows(curves), key),
        "logits": _with_key(_logit_rows(t), key),
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


def _shift_rows(t: TrialLogits, src: np.ndarray, adjusted_test: np.ndarray) -> dict:
    """Shifted test label distributions (LADE protocol) x adjustment; ``src`` is the prior inside
    the logits (uniform for balanced ones)."""
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
        for a in SHIFT_ADJUSTMENTS:
            logits, l1 = options[a]
            for k, v in (("shift", name), ("ratio", ratio), ("direction", direction), ("size", int(idx.size)),
                         ("adjustment", a), ("accuracy", _acc(logits, y)), ("prior_l1", l1)):
                rows[k].append(v)
    return rows


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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _taunorm_cols(t: dict | None) -> dict:
    t = t or {}
    nan = float("nan")
    return {"taunorm_tau_star": t.get("tau_star", nan), "val_bal_acc_taunorm": t.get("val_bal_acc", nan),
            "test_bal_acc_taunorm": t.get("test_bal_acc", nan), "test_bal_acc_taunorm_tau1": t.get("test_bal_acc_tau1", nan)}


def epoch_rows(meta: R.TrialMeta, history: list[dict]) -> dict:
    cols = R.SCHEMAS["epochs"].names[2:]  # after study, trial_id
    # the test columns exist only with train.track_test (and not in histories from older checkpoints)
    rows = {c: [h[c] if not c.startswith("test_") else h.get(c, float("nan")) for h in history] for c in cols}
    return _with_key(rows, {"study": meta.study, "trial_id": meta.trial_id})


def failed_trial_row(meta: R.TrialMeta, *, status: str, error: str, epochs_run: int, wall_s: float) -> dict:
    """A trials row for a trial that produced no final logits (failed, stopped, interrupted):
    validation and test values NaN unless the caller fills them in."""
    return R.TrialRecord.of(meta, status=status, error=error[:2000], epochs_run=epochs_run, wall_s=wall_s,
                            finished_at=_now(), versions=versions(), code_version=code_version()).columns()


def _with_key(cols: dict, key: dict) -> dict:
    n = len(next(iter(cols.values()))) if cols else 0
    return {**{k: [v] * n for k, v in key.items()}, **cols}


TAUNORM_GRID = np.round(np.linspace(0.0, 2.0, 21), 10)  # tau in [0, 2], Kang et al.


def tau_normalized_results(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], weight: torch.Tensor,
                           num_classes: int) -> dict:
    """tau-normalised classifier (Kang et al. ICLR 2020): logits = features @ (w_c / ||w_c||^tau).T,
    bias dropped; tau* picked on validation over a 0.1 grid of [0, 2] (the features are not
    linear in tau, so no exact curve). ``features``: {"val": (N_val, D), "test": (N_test, D)},
    ``Classifier.features`` in eval mode; ``labels``: the same splits' (N,); ``weight``: the
    linear head's (C, D). Returns tau*, validation and test balanced accuracy at tau*, and test
    balanced accuracy at tau = 1."""

    feats = {s: torch.as_tensor(f).double() for s, f in features.items()}
    w = torch.as_tensor(weight).double()

    def bal(split, tau):
        return balanced_accuracy((feats[split] @ tau_normalize(w, tau).T).numpy(), labels[split], num_classes)

    val_curve = [bal("val", t) for t in TAUNORM_GRID]
    k = int(np.argmax(val_curve))
    return {"tau_star": float(TAUNORM_GRID[k]), "val_bal_acc": float(val_curve[k]),
            "test_bal_acc": bal("test", float(TAUNORM_GRID[k])), "test_bal_acc_tau1": bal("test", 1.0)}
