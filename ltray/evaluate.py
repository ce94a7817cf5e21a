"""After training: post-hoc rules and every table row of one trial (pure: no Ray, no I/O).

tau* comes from the exact tau curve on *validation* logits; test numbers are only reported.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from ltray.core.longtail import shift_names, shifted_test_indices
from ltray.core.metrics import VAL_METRICS, per_class_accuracy, shot_accuracy
from ltray.core.posthoc import estimate_prior_bbse, estimate_prior_em, logit_adjust, pc_adjust, tau_curve
from ltray.methods import Method

SHIFT_ADJUSTMENTS = ("none", "posthoc_tau", "pc_true", "pc_em", "pc_bbse")
TRIAL_METRICS = (*VAL_METRICS, "test_bal_acc", "test_many", "test_medium", "test_few")


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


def trial_tables(*, study: str, trial_id: str, method: Method, hp: dict, seed: int, repeat: int, exp,
                 subset_hash: str, balanced: bool, val_logits: np.ndarray, val_y: np.ndarray, test_logits: np.ndarray,
                 test_y: np.ndarray, train_counts: np.ndarray, history: list[dict], best_epoch: int,
                 wall_s: float, status: str = "completed", error: str = "", taunorm: dict | None = None,
                 stage: str = "", resumed_at: int = 0) -> dict[str, dict]:
    """Columns of every table for one trial that produced logits (completed or stopped early).

    ``balanced``: the trial's logits already have the training prior removed (a balanced loss,
    or class-balanced sampling; :func:`ltray.methods.logits_are_balanced`). Every post-hoc rule
    then divides out a uniform prior instead of the training one (METHODS.md: no double
    counting): post-hoc LA is the identity (tau* recorded as 0) and PC adds only the target prior.
    """
    counts = np.asarray(train_counts)
    C = counts.size
    train_prior = counts / counts.sum()
    prior = np.full(C, 1.0 / C) if balanced else train_prior  # the prior inside the logits
    key = {"study": study, "trial_id": trial_id}

    curve_val = tau_curve(val_logits, val_y, prior, exp.posthoc.tau_max)
    curve_test = tau_curve(test_logits, test_y, prior, exp.posthoc.tau_max)  # for display only
    tau = 0.0 if balanced else curve_val.tau_star  # a flat curve: nothing to divide out
    adj = {s: logit_adjust(torch.from_numpy(l.astype(np.float64)), prior, tau).numpy()
           for s, l in (("val", val_logits), ("test", test_logits))}

    per_class = {k: [] for k in ("split", "class_id", "train_count", "accuracy", "accuracy_posthoc")}
    summary = {}
    for split, logits, y in (("val", val_logits, val_y), ("test", test_logits, test_y)):
        pc, bal, shots = _shots(logits, y, counts)
        pca, bala, shotsa = _shots(adj[split], y, counts)
        summary[split] = (bal, shots, bala, shotsa)
        per_class["split"] += [split] * C
        per_class["class_id"] += list(range(C))
        per_class["train_count"] += counts.tolist()
        per_class["accuracy"] += pc.tolist()
        per_class["accuracy_posthoc"] += pca.tolist()

    # Shifted test label distributions (LADE protocol) x adjustment.
    src = prior
    test_t = torch.from_numpy(test_logits.astype(np.float64))
    probs = torch.softmax(test_t, 1).numpy()
    shifts = {k: [] for k in ("shift", "ratio", "direction", "size", "adjustment", "accuracy", "prior_l1")}
    for name, ratio, direction in shift_names():
        idx = shifted_test_indices(test_y, counts, ratio, direction)
        y = test_y[idx]
        true = np.bincount(y, minlength=C) / max(y.size, 1)
        em = estimate_prior_em(probs[idx], src)
        # BBSE: confusion on the (balanced) validation set, predictions on the shifted set
        bbse = estimate_prior_bbse(val_logits.argmax(1), val_y, test_logits[idx].argmax(1), C)
        options = {
            "none": (test_logits[idx], np.nan),
            "posthoc_tau": (adj["test"][idx], np.nan),
            "pc_true": (pc_adjust(test_t[idx], src, np.clip(true, 1e-12, None)).numpy(), 0.0),
            "pc_em": (pc_adjust(test_t[idx], src, np.clip(em, 1e-12, None)).numpy(), float(np.abs(em - true).sum())),
            "pc_bbse": (pc_adjust(test_t[idx], src, np.clip(bbse, 1e-12, None)).numpy(),
                        float(np.abs(bbse - true).sum())),
        }
        for a in SHIFT_ADJUSTMENTS:
            logits, l1 = options[a]
            shifts["shift"].append(name)
            shifts["ratio"].append(ratio)
            shifts["direction"].append(direction)
            shifts["size"].append(int(idx.size))
            shifts["adjustment"].append(a)
            shifts["accuracy"].append(_acc(logits, y))
            shifts["prior_l1"].append(l1)

    curves = {k: [] for k in ("split", "tau_lo", "tau_hi", "bal_acc")}
    for split, c in (("val", curve_val), ("test", curve_test)):
        n = c.values.size
        curves["split"] += [split] * n
        curves["tau_lo"] += c.breakpoints[:-1].tolist()
        curves["tau_hi"] += c.breakpoints[1:].tolist()
        curves["bal_acc"] += c.values.tolist()

    (vb, vs, vba, _), (tb, ts, tba, tsa) = summary["val"], summary["test"]
    trial = {
        **key, "method": method.name, "params": [hp], "seed": seed, "repeat": repeat, "dataset": exp.data.name,
        "rho": exp.data.rho, "subset_hash": subset_hash, "model": exp.model.name,
        "num_workers": exp.resources.num_workers, "status": status, "error": error, "best_epoch": best_epoch,
        "epochs_run": len(history), "val_bal_acc": vb, "val_many": vs["many"], "val_medium": vs["medium"],
        "val_few": vs["few"], "test_bal_acc": tb, "test_many": ts["many"], "test_medium": ts["medium"],
        "test_few": ts["few"], "tau_star": tau, "val_bal_acc_posthoc": vba, "test_bal_acc_posthoc": tba,
        "test_bal_acc_posthoc1": float(np.nanmean(per_class_accuracy(logit_adjust(test_t, prior, 1.0).numpy(), test_y, C))),
        "test_many_posthoc": tsa["many"], "test_medium_posthoc": tsa["medium"], "test_few_posthoc": tsa["few"],
        **_taunorm_cols(taunorm), "stage": stage, "resumed_at": resumed_at, "wall_s": wall_s,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions(),
        "code_version": code_version(),
    }
    trial = {k: (v if isinstance(v, list) else [v]) for k, v in trial.items()}
    logits_rows = {k: [] for k in ("split", "index", "label", "logits")}
    for split, l, y in (("val", val_logits, val_y), ("test", test_logits, test_y)):
        logits_rows["split"] += [split] * y.size
        logits_rows["index"] += list(range(y.size))
        logits_rows["label"] += y.tolist()
        logits_rows["logits"] += list(l.astype(np.float32))
    return {
        "trials": trial,
        "epochs": epoch_rows(study, trial_id, history),
        "per_class": _with_key(per_class, key),
        "shifts": _with_key(shifts, key),
        "tau_curve": _with_key(curves, key),
        "logits": _with_key(logits_rows, key),
    }


def _taunorm_cols(t: dict | None) -> dict:
    t = t or {}
    nan = float("nan")
    return {"taunorm_tau_star": t.get("tau_star", nan), "val_bal_acc_taunorm": t.get("val_bal_acc", nan),
            "test_bal_acc_taunorm": t.get("test_bal_acc", nan), "test_bal_acc_taunorm1": t.get("test_bal_acc_tau1", nan)}


def epoch_rows(study: str, trial_id: str, history: list[dict]) -> dict:
    cols = ("epoch", "lr", "train_loss", "val_bal_acc", "val_many", "val_medium", "val_few", "images_per_s", "epoch_s")
    rows = {c: [h[c] for h in history] for c in cols}
    return _with_key(rows, {"study": study, "trial_id": trial_id})


def failed_trial_row(*, study: str, trial_id: str, method: str, hp: dict, seed: int, repeat: int, exp,
                     subset_hash: str, status: str, error: str, epochs_run: int, wall_s: float) -> dict:
    """A trials row for a trial that produced no final logits (failed)."""
    nan = float("nan")
    row = {"study": study, "trial_id": trial_id, "method": method, "params": [hp], "seed": seed, "repeat": repeat,
           "dataset": exp.data.name, "rho": exp.data.rho, "subset_hash": subset_hash, "model": exp.model.name,
           "num_workers": exp.resources.num_workers, "status": status, "error": error[:2000], "best_epoch": -1,
           "epochs_run": epochs_run, "tau_star": nan, "val_bal_acc_posthoc": nan, "test_bal_acc_posthoc": nan,
           "test_bal_acc_posthoc1": nan,
           "test_many_posthoc": nan, "test_medium_posthoc": nan, "test_few_posthoc": nan, **_taunorm_cols(None),
           "stage": "", "resumed_at": 0, "wall_s": wall_s,
           "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions(),
           "code_version": code_version()}
    row.update({m: nan for m in TRIAL_METRICS})
    return {k: (v if isinstance(v, list) else [v]) for k, v in row.items()}


def virtual_rows(study: str, trial_id: str, stage: str, teacher_logits: np.ndarray, counts: np.ndarray,
                 tau: float, power: float) -> dict:
    """The teacher's virtual example distribution on the training images: raw, tempered by tau,
    and tempered + power-normalised (what the DiVE student distils)."""
    from ltray.core.metrics import virtual_example_distribution as ved

    C = counts.size
    return _with_key({"stage": [stage] * C, "class_id": list(range(C)), "train_count": np.asarray(counts).tolist(),
                      "raw": ved(teacher_logits).tolist(), "tempered": ved(teacher_logits, tau).tolist(),
                      "power_normalised": ved(teacher_logits, tau, power).tolist()},
                     {"study": study, "trial_id": trial_id})


def _with_key(cols: dict, key: dict) -> dict:
    n = len(next(iter(cols.values()))) if cols else 0
    return {**{k: [v] * n for k, v in key.items()}, **cols}
