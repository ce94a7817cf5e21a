"""One trial, or a few side by side: training curves from the ``epochs`` table (validation
balanced accuracy, the tracked test one, training loss; epochs from 0 as in the tables), the
trial's own card (method, knobs, seed, data subset, status, error, per-shot results), and the
names trials go by on the page: method, knobs and seed, then the id."""

from __future__ import annotations

import plotly.graph_objects as go
import pyarrow as pa
from plotly.subplots import make_subplots

from dashboard.style import empty, method_color, pct, titled
from ltray.core.metrics import SHOT_GROUPS

DASHES = ("solid", "dash", "dot", "dashdot", "longdash")


def trial_label(row: dict) -> str:
    """"lade alpha=0.1 lam=0.01, seed 0 [a1b2c3d4]": what a trial is, then which."""
    knobs = " ".join(f"{k}={v:.4g}" for k, v in (row.get("params") or []))
    return f"{row['method']}{' ' + knobs if knobs else ''}, seed {row['seed']} [{row['trial_id']}]"


def curves_info(epochs: pa.Table, trials: pa.Table, trial_ids: list[str]) -> list[dict]:
    """Per chosen trial with stored epochs: its label, the epochs (0-based), validation and test
    balanced accuracy (test only where train.track_test stored it) and the training loss."""
    names = {r["trial_id"]: r for r in trials.select(["trial_id", "method", "params", "seed"]).to_pylist()}
    cols = ["trial_id", "epoch", "val_bal_acc", "test_bal_acc", "train_loss"]
    rows = [r for r in epochs.select(cols).to_pylist() if r["trial_id"] in set(trial_ids)]
    out = []
    for tid in trial_ids:
        mine = sorted((r for r in rows if r["trial_id"] == tid), key=lambda r: r["epoch"])
        if mine:
            meta = names.get(tid, {"trial_id": tid, "method": "?", "params": [], "seed": "?"})
            out.append({"trial_id": tid, "method": meta["method"], "label": trial_label(meta),
                        "epoch": [r["epoch"] for r in mine], "val": [r["val_bal_acc"] for r in mine],
                        "test": [r["test_bal_acc"] for r in mine], "loss": [r["train_loss"] for r in mine]})
    return out


def curves(info: list[dict], study: str) -> go.Figure:
    if not info:
        return empty("Training curves", "pick trials above (their epochs are stored as they train)", study)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.65, 0.35])
    for i, t in enumerate(info):
        color, dash = method_color(t["method"]), DASHES[i % len(DASHES)]
        fig.add_scatter(x=t["epoch"], y=[_p(v) for v in t["val"]], name=f"{t['label']}: validation", row=1, col=1,
                        mode="lines+markers", line=dict(color=color, dash=dash), legendgroup=t["trial_id"])
        if any(v == v for v in t["test"]):
            fig.add_scatter(x=t["epoch"], y=[_p(v) for v in t["test"]], name=f"{t['label']}: test (tracked)", row=1,
                            col=1, mode="lines", line=dict(color=color, dash=dash, width=1), opacity=0.6,
                            legendgroup=t["trial_id"])
        fig.add_scatter(x=t["epoch"], y=t["loss"], name=f"{t['label']}: loss", row=2, col=1, mode="lines",
                        line=dict(color=color, dash=dash), legendgroup=t["trial_id"], showlegend=False)
    fig.update_yaxes(title_text="balanced accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="training loss", row=2, col=1)
    fig.update_xaxes(title_text="epoch (from 0)", row=2, col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    return titled(fig, study, "Training curves", 520)


def _p(v):
    return None if v is None or v != v else v * 100


CARD_FIELDS = (("method", "method"), ("knobs", "params"), ("seed", "seed"), ("repeat", "repeat"),
               ("status", "status"), ("error", "error"), ("best epoch (from 0)", "best_epoch"),
               ("epochs run", "epochs_run"), ("data subset", "subset_hash"), ("dataset", "dataset"),
               ("model", "model"), ("tau* (post-hoc, validation)", "tau_star"), ("wall time", "wall_s"),
               ("finished", "finished_at"), ("code", "code_version"), ("node", "node"))


def trial_card(trials: pa.Table, trial_id: str | None) -> list[tuple[str, str]]:
    """(field, value) of one trial, in the page's vocabulary (accuracies in %, epochs from 0)."""
    if not trial_id:
        return []
    rows = [r for r in trials.to_pylist() if r["trial_id"] == trial_id]
    if not rows:
        return []
    r = rows[0]
    out = [("trial", trial_id)]
    for label, col in CARD_FIELDS:
        v = r.get(col)
        if col == "params":
            v = ", ".join(f"{k}={x:.4g}" for k, x in (v or [])) or "none"
        elif col == "wall_s" and v == v and v is not None:
            v = f"{v:.0f} s"
        elif col == "tau_star" and v == v and v is not None:
            v = f"{v:.3f}" + (" (balanced logits: nothing to adjust)" if v == 0 else "")
        if v not in (None, "") and v == v:
            out.append((label, str(v)))
    for split in ("val", "test"):
        out.append((f"{split} balanced accuracy", pct(r.get(f"{split}_bal_acc"), 2)))
        out.append((f"{split} per shot group", ", ".join(f"{g} {pct(r.get(f'{split}_{g}'))}" for g in SHOT_GROUPS)))
    return out
