"""The numbers of every report table, as plain rows: the LA paper's Table 3, the shifted test
sets, the paired comparison of each method against a baseline, and the protocol gap. Each row
names the trials it comes from."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ltray.core.longtail import shift_names, shifted_test_indices
from ltray.core.metrics import OVERALL, SHOT_GROUPS, per_class_accuracy, shot_masks
from ltray.core.posthoc import logit_adjust, logit_prior
from ltray.core.stats import holm, mean_ci, paired_difference
from ltray.datasets import get_dataset
from ltray.errors import LtrayError
from ltray.report.select import best_configurations

GROUPS = (OVERALL, *SHOT_GROUPS)  # the balanced accuracy over all classes, then per shot group


# (row label, method, column) of the LA paper's Table 3; post-hoc rows reuse the ERM trials
LA_ROWS = (
    ("ERM", "ce", "test_bal_acc"),
    ("Weight normalisation (tau = 1)", "ce", "test_bal_acc_taunorm_tau1"),
    ("Weight normalisation (tau = tau*)", "ce", "test_bal_acc_taunorm"),
    ("Adaptive margin (LDAM-DRW)", "ldam_drw", "test_bal_acc"),
    ("Equalised loss", "equalization", "test_bal_acc"),
    ("Logit adjustment post-hoc (tau = 1)", "ce", "test_bal_acc_posthoc_tau1"),
    ("Logit adjustment post-hoc (tau = tau*)", "ce", "test_bal_acc_posthoc"),
    ("Logit adjustment loss", "logit_adjusted", "test_bal_acc"),
)


def _ids(rows: list[dict]) -> list[str]:
    return [r["trial_id"] for r in rows]


def la_table(trials) -> list[dict]:
    """Balanced error (%) per row, mean +- 95% CI over seeds; a row without its method is absent."""
    best = best_configurations(trials)
    out = []
    for label, method, col in LA_ROWS:
        if method in best:
            s = mean_ci([1.0 - r[col] if r[col] is not None else None for r in best[method]])
            out.append({"row": label, **s, "trial_ids": _ids(best[method])})
    return out


def shift_table(tables) -> list[dict]:
    """Mean accuracy per (method, adjustment, shifted set) over the best configuration's seeds."""
    best = best_configurations(tables["trials"])
    ids = {r["trial_id"]: m for m, rows in best.items() for r in rows}
    acc: dict[tuple, list[float]] = {}
    used: dict[tuple, list[str]] = {}
    for s in tables["shifts"].to_pylist():
        if s["trial_id"] in ids:
            key = (ids[s["trial_id"]], s["adjustment"], s["shift"])
            acc.setdefault(key, []).append(s["accuracy"])
            used.setdefault(key, []).append(s["trial_id"])
    return [{"method": m, "adjustment": a, "shift": sh, **mean_ci(v), "trial_ids": used[(m, a, sh)]}
            for (m, a, sh), v in sorted(acc.items())]


def group_masks(train_counts) -> dict[str, np.ndarray]:
    """Boolean masks (C,) of the classes in each group: all of them, then each shot group."""
    return {OVERALL: np.ones(np.asarray(train_counts).size, bool), **shot_masks(train_counts)}


def _variants(best: dict, baseline: str) -> list[tuple[str, str, str]]:
    """(row label, method, variant) of the compared rows: each method's selected configuration as
    trained, and the baseline with post-hoc logit adjustment (tau* from validation)."""
    return [(m, m, "raw") for m in best] + [(f"{baseline} + post-hoc LA", baseline, "posthoc")]


def _column(variant: str, group: str) -> str:
    return f"test_{group}" + ("_posthoc" if variant == "posthoc" else "")


def _test_logits(tables, trial_ids) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """trial_id -> (labels (N,), test logits (N, C), train counts (C,)), read from the stored tables
    once (filtered in Arrow, then one conversion), not once per trial."""
    ids = pa.array(sorted(trial_ids))
    lg = tables["logits"]
    lg = lg.filter(pc.and_(pc.equal(lg["split"], "test"), pc.is_in(lg["trial_id"], ids)))
    pcl = tables["per_class"]
    pcl = pcl.filter(pc.and_(pc.equal(pcl["split"], "test"), pc.is_in(pcl["trial_id"], ids)))
    out = {}
    tid_col, index, label = (lg[c].to_numpy(zero_copy_only=False) for c in ("trial_id", "index", "label"))
    flat = pc.list_flatten(lg["logits"]).to_numpy(zero_copy_only=False)
    width = flat.size // max(lg.num_rows, 1)
    logits = flat.reshape(lg.num_rows, width) if lg.num_rows else flat.reshape(0, 0)
    c_tid, c_cls, c_cnt = (pcl[c].to_numpy(zero_copy_only=False) for c in ("trial_id", "class_id", "train_count"))
    for tid in trial_ids:
        rows, cls = np.flatnonzero(tid_col == tid), np.flatnonzero(c_tid == tid)
        if rows.size == 0 or cls.size == 0:
            raise LtrayError(f"trial {tid} has no stored test logits; the paired comparison needs them")
        rows = rows[np.argsort(index[rows])]
        counts = np.zeros(int(c_cls[cls].max()) + 1)
        counts[c_cls[cls]] = c_cnt[cls]
        out[tid] = (label[rows].astype(np.int64), logits[rows].astype(np.float64), counts)
    return out


def _correct(stored: tuple, trial: dict, variant: str) -> np.ndarray:
    """Per test image, right or wrong; the post-hoc variant applies the trial's tau* (0 for
    balanced logits) to the training prior, as its row's post-hoc figures do."""
    y, f, counts = stored
    if variant == "posthoc" and trial["tau_star"]:
        f = logit_adjust(torch.from_numpy(f), logit_prior(counts, balanced=False), trial["tau_star"]).numpy()
    return f.argmax(1) == y


def paired_table(tables, baseline: str = "ce", objective: str | None = None) -> list[dict]:
    """Per compared row: test accuracy per group (mean +- 95% t-interval over seeds) and its paired
    difference from ``baseline`` (seed k against seed k: same subset and initial weights):
    ``ltray.core.stats.paired_difference``, each group's p also Holm-adjusted over the rows
    compared (``p_holm``, what a verdict uses)."""
    best = best_configurations(tables["trials"], objective)
    if baseline not in best:
        raise LtrayError(f"no completed {baseline!r} trials to compare against; name another with --baseline "
                         f"(methods here: {', '.join(best) or 'none'})")
    base = {r["repeat"]: r for r in best[baseline]}
    stored = _test_logits(tables, {r["trial_id"] for rows in best.values() for r in rows})
    shared = get_dataset(best[baseline][0]["dataset"]).fixed_test
    out = []
    for label, method, variant in _variants(best, baseline):
        runs = {r["repeat"]: r for r in best[method]}
        seeds = sorted(k for k in runs if k in base and runs[k]["subset_hash"] == base[k]["subset_hash"])
        row = {"row": label, "method": method, "variant": variant, "seeds": len(seeds),
               "trial_ids": _ids([runs[k] for k in seeds] + [base[k] for k in seeds]),
               **{g: mean_ci([runs[k][_column(variant, g)] for k in seeds]) for g in GROUPS}}
        if (method, variant) != (baseline, "raw") and seeds:
            a = np.stack([_correct(stored[runs[k]["trial_id"]], runs[k], variant) for k in seeds])
            b = np.stack([_correct(stored[base[k]["trial_id"]], base[k], "raw") for k in seeds])
            y = np.stack([stored[runs[k]["trial_id"]][0] for k in seeds])
            counts = stored[base[seeds[0]]["trial_id"]][2]
            row["vs_baseline"] = paired_difference(a, b, y, counts.size, group_masks(counts), shared)
        out.append(row)
    _adjust(out)
    return out


def _adjust(rows: list[dict]) -> None:
    """Holm over the rows compared with the baseline, per group: ``p_holm`` and ``comparisons``."""
    compared = [r["vs_baseline"] for r in rows if "vs_baseline" in r]
    for g in GROUPS:
        ps = [d[g]["p"] for d in compared]
        m = sum(p == p for p in ps)  # NaN p (one seed, an empty group) is no comparison
        for d, adjusted in zip(compared, holm(ps)):
            d[g]["p_holm"], d[g]["comparisons"] = adjusted, m


def gap_table(tables, baseline: str = "ce", objective: str | None = None) -> list[dict]:
    """The protocol gap per compared row and group: the test accuracy a study would publish if it
    chose the epoch (and, with post-hoc LA, tau) on test, minus ltray's validation-chosen figure;
    mean +- 95% CI over seeds. Needs ``train.track_test`` (the epochs' test columns)."""
    best = best_configurations(tables["trials"], objective)
    epochs: dict[str, list[dict]] = {}
    for e in tables["epochs"].to_pylist():
        epochs.setdefault(e["trial_id"], []).append(e)
    out = []
    for label, method, variant in _variants(best, baseline) if baseline in best else []:
        chosen_on_test: dict[str, list[float]] = {g: [] for g in GROUPS}
        optimism: dict[str, list[float]] = {g: [] for g in GROUPS}
        for r in best[method]:
            rows = [e for e in epochs.get(r["trial_id"], []) if e["test_bal_acc"] == e["test_bal_acc"]]
            if not rows:
                continue
            if variant == "posthoc":  # epoch and tau both chosen on test: the exact curve's best, per epoch
                on_test = {"bal_acc": max(e["test_bal_acc_tau_oracle"] for e in rows)}
            else:
                top = max(rows, key=lambda e: e["test_bal_acc"])  # the first of the best, as a test-selecting repo
                on_test = {g: top[f"test_{g}"] for g in GROUPS}
            for g in GROUPS:
                v = on_test.get(g, float("nan"))
                chosen_on_test[g].append(v)
                optimism[g].append(v - r[_column(variant, g)])
        out.append({"row": label, "method": method, "variant": variant, "trial_ids": _ids(best[method]),
                    **{g: {"on_test": mean_ci(chosen_on_test[g]),
                           "on_val": mean_ci([r[_column(variant, g)] for r in best[method]]),
                           "optimism": mean_ci(optimism[g])} for g in GROUPS}})
    return out


def expert_table(tables) -> list[dict]:
    """Per multi-expert method (its selected configuration): each expert's test accuracy per group
    and that of their mean (the method's prediction), mean +- 95% CI over the seeds."""
    best = best_configurations(tables["trials"])
    ex = tables["expert_logits"].filter(pc.equal(tables["expert_logits"]["split"], "test"))
    counts = train_counts(tables["per_class"])
    out = []
    for method, rows in best.items():
        ids = [r["trial_id"] for r in rows]
        mine = ex.filter(pc.is_in(ex["trial_id"], pa.array(ids)))
        if mine.num_rows == 0:
            continue
        per_trial = {}
        for tid in ids:
            t = mine.filter(pc.equal(mine["trial_id"], tid))
            if t.num_rows == 0 or tid not in counts:
                continue
            e, idx, y = (t[c].to_numpy(zero_copy_only=False) for c in ("expert", "index", "label"))
            z = pc.list_flatten(t["logits"]).to_numpy(zero_copy_only=False).reshape(t.num_rows, -1)
            n_exp = int(e.max()) + 1
            order = np.lexsort((idx, e))
            z, y = z[order].reshape(n_exp, -1, z.shape[1]), y[order][: idx.size // n_exp]
            per_trial[tid] = [*(z[k] for k in range(n_exp)), z.mean(0)], y
        if not per_trial:
            continue
        n_exp = len(next(iter(per_trial.values()))[0]) - 1
        for k in range(n_exp + 1):
            row = {"method": method, "expert": "mean (the prediction)" if k == n_exp else str(k),
                   "trial_ids": list(per_trial)}
            accs = [_group_accuracy(z[k], y, counts[tid]) for tid, (z, y) in per_trial.items()]
            row.update({g: mean_ci([a[g] for a in accs]) for g in GROUPS})
            row["shifts"] = mean_ci([_mean_over_shifts(z[k], y, counts[tid]) for tid, (z, y) in per_trial.items()])
            out.append(row)
    return out


def train_counts(per_class: pa.Table) -> dict[str, np.ndarray]:
    """Training images per class (index: class id), per trial, from its test per-class rows."""
    t = per_class.filter(pc.equal(per_class["split"], "test"))
    out: dict[str, dict] = {}
    for r in t.select(["trial_id", "class_id", "train_count"]).to_pylist():
        out.setdefault(r["trial_id"], {})[r["class_id"]] = r["train_count"]
    return {tid: np.array([c[i] for i in sorted(c)]) for tid, c in out.items()}


def _mean_over_shifts(logits: np.ndarray, y: np.ndarray, counts: np.ndarray) -> float:
    """Accuracy (no prior adjustment) averaged over the 11 shifted test sets."""
    accs = [float((logits[i].argmax(1) == y[i]).mean())
            for i in (shifted_test_indices(y, counts, r, d) for _, r, d in shift_names())]
    return float(np.mean(accs))


def _group_accuracy(logits: np.ndarray, y: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """Balanced accuracy over all classes and over each shot group's classes (NaN for an empty group)."""
    recall = per_class_accuracy(logits, y, counts.size)
    return {g: float(np.nanmean(recall[m])) if m.any() else float("nan") for g, m in group_masks(counts).items()}
