"""The contract between a run and whoever listens (Ray Tune, ASHA, a test): what each report
says (``selected_metrics``: the selected epoch's values, this epoch's, progress), which epochs
are reported and which carry a checkpoint (``ReportClock``), and the listeners of a run
(``Reporting``)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

from ltray.core.metrics import VAL_METRICS
from ltray.train.checkpoint import TrainState, save_checkpoint
from ltray.train.loop import collective_device

Report = Callable[[dict, str | None], None]
"""(metrics, checkpoint folder or None) -> None: rank 0 passes a folder holding ``state.pt``."""


@dataclass(frozen=True)
class Reporting:
    """Who hears about a run, and how often (seconds of ``time.monotonic``)."""

    report: Report | None = None
    """Called with :func:`selected_metrics` after each reported epoch (None: nobody listens)."""
    report_every_s: float = 0.0
    """Report an epoch only when this many seconds passed since the last report (0: every epoch)."""
    checkpoint_every_s: float = 0.0
    """A reported epoch carries a checkpoint when this many seconds passed since the last (0: every
    epoch; the last epoch always carries one)."""
    on_epoch: Callable[[list[dict]], None] | None = None
    """Sees the whole history after every epoch (rank 0)."""
    log: Callable[[str], None] | None = None
    """A line per epoch (rank 0), e.g. ``print``."""


def selected_metrics(history: list[dict], best_epoch: int, epochs: int) -> dict:
    """What a report tells Tune after an epoch: ``VAL_METRICS`` of the best epoch so far (chosen
    on ``val_bal_acc``), so that a trial stopped early (ASHA) or finished is ranked on the same
    number the tables store; this epoch's own values as ``epoch_val_*``; and ``progress``, the
    fraction of this trial's epochs done (ASHA's clock: a 10-epoch cRT stage and a 200-epoch
    run are judged at the same fraction). The last epoch carries no ``progress``: ASHA ignores
    a result without its clock, so it can never stop a trial that is writing its tables; the
    trial's stored result follows with progress 1."""
    row = history[-1]
    best = next((h for h in history if h["epoch"] == best_epoch), None)
    out = {f"epoch_{k}": row[k] for k in VAL_METRICS}
    out.update({k: (best[k] if best is not None else float("nan")) for k in VAL_METRICS})
    out |= {"epoch": row["epoch"], "selected_epoch": best_epoch, "train_loss": row["train_loss"], "lr": row["lr"]}
    if row["epoch"] + 1 < epochs:
        out["progress"] = (row["epoch"] + 1) / epochs
    return out


class ReportClock:
    """Which epochs are reported, and which of those carry a checkpoint, in seconds of
    ``time.monotonic``. An epoch carries a checkpoint when ``checkpoint_every_s`` have passed
    since the last one, and always the last epoch; it is reported when it carries one or when
    ``report_every_s`` have passed since the last report. Rank 0's clock decides for all ranks."""

    def __init__(self, report_every_s: float, checkpoint_every_s: float, epochs: int, device: torch.device,
                 world: int = 1):
        self.report_every_s, self.checkpoint_every_s, self.epochs = report_every_s, checkpoint_every_s, epochs
        self.device, self.world = device, world
        self.last_report = self.last_checkpoint = time.monotonic()

    def tick(self, epoch: int) -> tuple[bool, bool]:
        """(report, with a checkpoint) for ``epoch``, just trained; reads the clock once."""
        now = time.monotonic()
        due = now - self.last_checkpoint >= self.checkpoint_every_s or epoch == self.epochs - 1
        flags = [due, due or now - self.last_report >= self.report_every_s]
        if self.world > 1:  # every rank must agree, or DDP ranks would report differently
            flag = torch.tensor([float(f) for f in flags], device=collective_device(self.device))
            dist.broadcast(flag, 0)
            flags = [bool(f) for f in flag.tolist()]
        due, send = flags
        if send:
            self.last_report = now
        if due:
            self.last_checkpoint = now
        return send, due


def report_epoch(report: Report, metrics: dict, state: TrainState, rank: int, with_checkpoint: bool) -> None:
    if rank != 0 or not with_checkpoint:
        report(metrics, None)
        return
    with tempfile.TemporaryDirectory(prefix="ltray-ckpt-") as d:
        save_checkpoint(d, state.to_checkpoint())
        report(metrics, d)  # the listener copies what it keeps before the folder goes
