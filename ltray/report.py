"""Tables from a stored study: per method (and configuration), mean +- 95% CI over seeds.

    python -m ltray.report results/la_table --table la       # the LA paper's Table 3 rows
    python -m ltray.report results/quickstart                # best configuration per method
    python -m ltray.report results/lade_shift --table shifts # the LADE shifted-test table
    python -m ltray.report results/fashion_lt --table paired # paired comparison vs CE + protocol gap
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltray import results as R
from ltray.core.metrics import FEW_SHOT, MANY_SHOT
from ltray.errors import LtrayError
from ltray.stats import mean_ci, paired_difference


def configurations(trials) -> dict[tuple, list[dict]]:
    """Completed trials grouped by (method, hyperparameters): the seeds of one configuration."""
    groups: dict[tuple, list[dict]] = {}
    for r in trials.to_pylist():
        if r["status"] != "completed":
            continue
        key = (r["method"], json.dumps(sorted(dict(r["params"] or []).items())))
        groups.setdefault(key, []).append(r)
    return groups


def best_configurations(trials, objective: str | None = None) -> dict[str, list[dict]]:
    """Per method, the seeds of its configuration with the best mean validation objective: the
    study's own (its first search objective, which every row records; ``val_bal_acc`` for rows
    from before it was recorded), which is what the searcher averaged over repeats. The one
    selection the CLI summary, ``ltray.report`` and the dashboard use."""
    best: dict[str, tuple[float, list[dict]]] = {}
    groups = configurations(trials)
    if objective is None:
        recorded = {r.get("objective") for rows in groups.values() for r in rows} - {None, ""}
        objective = recorded.pop() if len(recorded) == 1 else "val_bal_acc"
    for (method, _), rows in groups.items():
        score = float(np.mean([r[objective] for r in rows]))
        if method not in best or score > best[method][0]:
            best[method] = (score, rows)
    return {m: rows for m, (_, rows) in sorted(best.items())}


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


def la_table(trials) -> list[dict]:
    """Balanced error (%) per row, mean +- 95% CI over seeds; a row without its method is absent."""
    best = best_configurations(trials)
    out = []
    for label, method, col in LA_ROWS:
        if method in best:
            s = mean_ci([1.0 - r[col] if r[col] is not None else None for r in best[method]])
            out.append({"row": label, **s})
    return out


def method_table(trials) -> list[dict]:
    out = []
    for method, rows in best_configurations(trials).items():
        out.append({"method": method, "params": dict(rows[0]["params"] or []),
                    **{k: mean_ci([r[k] for r in rows]) for k in
                       ("val_bal_acc", "test_bal_acc", "test_bal_acc_posthoc", "test_many", "test_medium", "test_few")}})
    return out


def shift_table(tables) -> list[dict]:
    """Mean accuracy per (method, adjustment, shifted set) over the best configuration's seeds."""
    best = best_configurations(tables["trials"])
    ids = {r["trial_id"]: m for m, rows in best.items() for r in rows}
    acc: dict[tuple, list[float]] = {}
    for s in tables["shifts"].to_pylist():
        if s["trial_id"] in ids:
            acc.setdefault((ids[s["trial_id"]], s["adjustment"], s["shift"]), []).append(s["accuracy"])
    return [{"method": m, "adjustment": a, "shift": sh, **mean_ci(v)} for (m, a, sh), v in sorted(acc.items())]


GROUPS = ("bal_acc", "many", "medium", "few")  # the balanced accuracy over all classes, then per shot group


def group_masks(train_counts) -> dict[str, np.ndarray]:
    """Boolean masks (C,) of the classes in each group (many > 100, few < 20 training images)."""
    n = np.asarray(train_counts)
    return {"bal_acc": np.ones(n.size, bool), "many": n > MANY_SHOT, "medium": (n <= MANY_SHOT) & (n >= FEW_SHOT),
            "few": n < FEW_SHOT}


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
        f = f - trial["tau_star"] * np.log(counts / counts.sum())
    return f.argmax(1) == y


def paired_table(tables, baseline: str = "ce", replicates: int = 4000, objective: str = "val_bal_acc") -> list[dict]:
    """Per compared row: test accuracy per group (mean +- 95% t-interval over seeds) and its paired
    difference from ``baseline`` (seed k against seed k: same subset and initial weights),
    with a bootstrap over seeds and test images (``ltray.stats.paired_difference``)."""
    from ltray.datasets import get_dataset

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
               **{g: mean_ci([runs[k][_column(variant, g)] for k in seeds]) for g in GROUPS}}
        if (method, variant) != (baseline, "raw") and seeds:
            a = np.stack([_correct(stored[runs[k]["trial_id"]], runs[k], variant) for k in seeds])
            b = np.stack([_correct(stored[base[k]["trial_id"]], base[k], "raw") for k in seeds])
            y = np.stack([stored[runs[k]["trial_id"]][0] for k in seeds])
            counts = stored[base[seeds[0]]["trial_id"]][2]
            row["vs_baseline"] = paired_difference(a, b, y, counts.size, group_masks(counts), shared, replicates)
        out.append(row)
    return out


def gap_table(tables, baseline: str = "ce", objective: str = "val_bal_acc") -> list[dict]:
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
        out.append({"row": label, "method": method, "variant": variant,
                    **{g: {"on_test": mean_ci(chosen_on_test[g]),
                           "on_val": mean_ci([r[_column(variant, g)] for r in best[method]]),
                           "optimism": mean_ci(optimism[g])} for g in GROUPS}})
    return out


def _pct(s: dict) -> str:
    if s["n"] == 0:
        return "-"
    return f"{s['mean'] * 100:.2f}" + (f" +- {s['ci95'] * 100:.2f}" if s["n"] > 1 else "")


def paired_lines(tables, baseline: str = "ce") -> list[str]:
    """The paired table as text: per row, test accuracy per group and the difference from the baseline."""
    rows = paired_table(tables, baseline)
    n = max(r["seeds"] for r in rows)
    out = [f"test accuracy (%), mean +- 95% CI over {n} paired seeds; difference vs {baseline}: paired bootstrap "
           "over seeds and test images",
           f"{'method':<24}{'overall':>16}{'many':>16}{'medium':>16}{'few':>16}   vs {baseline} (overall)"]
    for r in rows:
        d = r.get("vs_baseline", {}).get("bal_acc")
        if d is None:
            vs = "(baseline)"
        else:
            verdict = "not distinguishable" if d["lo"] <= 0 <= d["hi"] else ("better" if d["lo"] > 0 else "worse")
            p = "p<0.001" if d["p"] < 0.001 else f"p={d['p']:.3f}"  # the bootstrap's floor is 2 / (replicates + 1)
            vs = f"{d['diff'] * 100:+.2f} [{d['lo'] * 100:+.2f}, {d['hi'] * 100:+.2f}] {p} {verdict}"
        out.append(f"{r['row']:<24}" + "".join(f"{_pct(r[g]):>16}" for g in GROUPS) + f"   {vs}")
    for group in ("few", "medium"):
        diffs = [(r["row"], r["vs_baseline"][group]) for r in rows if "vs_baseline" in r]
        diffs = [(name, d) for name, d in diffs if d["diff"] == d["diff"]]
        out.append(f"{group}-shot difference vs {baseline}: " + ("; ".join(
            f"{name} {d['diff'] * 100:+.2f} [{d['lo'] * 100:+.2f}, {d['hi'] * 100:+.2f}]" for name, d in diffs)
            or f"no class in the {group}-shot group ({'< 20' if group == 'few' else '20-100'} training images)"))
    return out


def gap_lines(tables, baseline: str = "ce") -> list[str]:
    """The protocol gap as text (or one line saying how to get it)."""
    rows = gap_table(tables, baseline)
    if not rows or all(r["bal_acc"]["on_test"]["n"] == 0 for r in rows):
        return ["protocol gap: no per-epoch test results stored; run the study with train.track_test=true"]
    out = ["protocol gap: test accuracy (%) with the epoch (and tau) chosen on test vs chosen on validation; "
           "optimism in points, mean +- 95% CI over seeds",
           f"{'method':<24}{'chosen on val':>16}{'chosen on test':>16}{'optimism':>16}{'many':>14}{'medium':>14}{'few':>14}"]
    for r in rows:
        g = r["bal_acc"]
        out.append(f"{r['row']:<24}{_pct(g['on_val']):>16}{_pct(g['on_test']):>16}{_pct(g['optimism']):>16}"
                   + "".join(f"{_pct(r[k]['optimism']):>14}" for k in ("many", "medium", "few")))
    return out


def _fmt(s: dict, scale: float = 100.0) -> str:
    if s["n"] == 0:
        return "-"
    ci = f" +- {s['ci95'] * scale:.2f}" if s["n"] > 1 else ""
    return f"{s['mean'] * scale:.2f}{ci} (n={s['n']})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltray.report", description=__doc__.split("\n\n")[0])
    p.add_argument("study", help="a study folder, e.g. results/quickstart")
    p.add_argument("--table", choices=("methods", "la", "shifts", "paired", "gap"), default="methods",
                   help="paired: every method against --baseline on paired seeds, then the protocol gap; "
                        "gap: the protocol gap alone")
    p.add_argument("--baseline", default="ce", help="the method the paired table compares against (default ce)")
    a = p.parse_args(argv)
    needs = {"paired": ("trials", "logits", "per_class", "epochs"), "gap": ("trials", "epochs")}
    try:
        tables = R.load_study(a.study, needs.get(a.table, ("trials", "shifts")))
        if a.table in ("paired", "gap"):
            lines = (paired_lines(tables, a.baseline) + [""] if a.table == "paired" else []) + gap_lines(tables, a.baseline)
            print("\n".join(lines))
            return 0
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.table == "la":
        print(f"{'balanced error (%)':<42} mean +- 95% CI")
        for r in la_table(tables["trials"]):
            print(f"{r['row']:<42} {_fmt(r)}")
    elif a.table == "methods":
        print(f"{'method':<18} {'val bal-acc':>22} {'test bal-acc':>22} {'test + post-hoc':>22} {'few':>22}")
        for r in method_table(tables["trials"]):
            print(f"{r['method']:<18} {_fmt(r['val_bal_acc']):>22} {_fmt(r['test_bal_acc']):>22} "
                  f"{_fmt(r['test_bal_acc_posthoc']):>22} {_fmt(r['test_few']):>22}")
    else:
        from ltray.core.longtail import shift_names

        rows = shift_table(tables)
        names = [n for n, _, _ in shift_names()]
        print(f"{'method':<18}{'adjustment':<13}" + "".join(f"{n[:4] + n[-2:]:>8}" for n in names))
        for m, a_ in sorted({(r["method"], r["adjustment"]) for r in rows}):
            vals = {r["shift"]: r["mean"] for r in rows if r["method"] == m and r["adjustment"] == a_}
            print(f"{m:<18}{a_:<13}" + "".join(f"{vals.get(n, float('nan')) * 100:8.2f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
