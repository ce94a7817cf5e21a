"""``fit``: train one model with one method's loss and keep the epoch that is best on
validation. Set up (``build_run``), then per epoch: order, steps, the epoch's row, a report;
then the selected epoch's logits. No Ray inside: progress goes out through ``Reporting``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ltray.config.recipe import Recipe
from ltray.datasets import DataBundle
from ltray.methods import Method, get_method
from ltray.train.checkpoint import TrainState
from ltray.train.evaluation import epoch_row, predict, summarize, taunorm_results, test_views
from ltray.train.loop import (ModelStart, NoSelectableEpoch, Run, batches, build_run, epoch_indices, lr_at,
                              rank_world, train_epoch)
from ltray.train.reporting import ReportClock, Reporting, report_epoch, selected_metrics


@dataclass
class FitResult:
    """What one training run leaves: logits of the best epoch (chosen on validation) and metrics."""

    val_logits: np.ndarray  # (N_val, C) float32
    val_labels: np.ndarray  # (N_val,)
    test_logits: np.ndarray  # (N_test, C)
    test_labels: np.ndarray  # (N_test,)
    train_counts: np.ndarray  # (C,)
    best_epoch: int
    history: list[dict]
    metrics: dict
    state_dict: dict = field(repr=False, default_factory=dict)
    taunorm: dict = field(default_factory=dict)  # tau-normalised classifier results (linear heads)
    start_epoch: int = 0  # > 0 when the run resumed from a checkpoint
    expert_logits: dict | None = None  # a multi-expert model's {"val", "test"}: (N, E, C), their mean the logits
    test_views: list | None = None  # per epoch, two augmented views' test expert logits (N, E, C) (SADE's aggregation)


def fit(data: DataBundle, method: str | Method = "ce", hp: dict | None = None, model: str | ModelStart = "cnn-small",
        recipe: Recipe = Recipe(), *, seed: int = 0, device: str | torch.device = "cpu",
        reporting: Reporting = Reporting(), distributed: bool = True) -> FitResult:
    """Train a model on ``data`` with ``method``'s loss (``hp``: its knobs, defaults filled in);
    select the best epoch on validation. ``model``: a model name, or a ``ModelStart`` saying
    where it starts (a trained backbone, frozen or not, a trained head, a DiVE teacher, a
    checkpoint to resume from). ``recipe`` is trained as given: a study's trial passes the
    recipe ``ltray.config.resolve_trial`` decided, the method's own changes included.

    Every epoch computes validation metrics; ``reporting`` says who hears of it and how often
    (:class:`ltray.train.reporting.Reporting`): ``report(metrics, checkpoint_dir)`` gets
    :func:`selected_metrics` (the best epoch so far, this epoch, progress), rank 0 with a
    folder holding ``state.pt`` (resumable through ``ModelStart.resume_from``) on checkpoint
    epochs. Inside torch.distributed, the model is wrapped in DDP and each rank trains on its
    shard of every global batch (``distributed=False`` trains alone, e.g. a shared teacher
    stage). Test logits are computed once, after training, with the best weights.
    """
    m = get_method(method) if isinstance(method, str) else method
    hp = m.hp(hp)
    recipe.validate()
    rank, world = rank_world() if distributed else (0, 1)
    device = torch.device(device)
    torch.manual_seed(seed)
    start = model if isinstance(model, ModelStart) else ModelStart(name=model)
    run, state = build_run(data, m, hp, recipe, start, device, rank, world)
    resumed_at = state.epoch
    clock = ReportClock(reporting.report_every_s, reporting.checkpoint_every_s, recipe.epochs, device, world)
    labels = data.train.y.numpy()
    for epoch in range(state.epoch, recipe.epochs):
        gen = np.random.default_rng([seed, epoch])  # same order on every rank, reproducible on resume
        tgen = torch.Generator().manual_seed(seed * 100003 + epoch * 7919 + rank)
        lr = lr_at(recipe, epoch)
        stats = train_epoch(run, batches(data, run, epoch_indices(labels, recipe, gen, epoch), tgen), epoch, lr, gen, tgen)
        state.record(epoch_row(run, data, epoch, lr, stats))
        if rank == 0:
            _tell_rank0(reporting, state, recipe, lr)
        if reporting.report is not None:
            send, with_checkpoint = clock.tick(epoch)
            if send:
                report_epoch(reporting.report, selected_metrics(state.history, state.best_epoch, recipe.epochs), state,
                             rank, with_checkpoint)
    return _fit_result(run, state, data, resumed_at)


def _tell_rank0(reporting: Reporting, state: TrainState, recipe: Recipe, lr: float) -> None:
    """The whole history to ``on_epoch``, the epoch's line to ``log``."""
    row = state.history[-1]
    if reporting.on_epoch is not None:
        reporting.on_epoch(state.history)
    if reporting.log:
        reporting.log(f"epoch {row['epoch']:>3} of 0-{recipe.epochs - 1}  loss {row['train_loss']:.4f}  lr {lr:.4g}  "
                      f"val bal-acc {row['val_bal_acc']:.4f}  {row['images_per_s']:.0f} img/s")


def _fit_result(run: Run, state: TrainState, data: DataBundle, resumed_at: int) -> FitResult:
    """Validation and test logits and metrics of the best epoch's weights (loaded into ``run.net``)."""
    if state.best_state is None:
        raise NoSelectableEpoch(f"no epoch of {run.recipe.epochs} had a finite validation balanced accuracy "
                                f"({len(data.val)} validation images), so there is no best epoch to keep")
    net, workers = run.net, run.recipe.loader_workers
    net.load_state_dict(state.best_state)
    val_logits = predict(net, data, "val", run.device, workers=workers) * run.scale
    test_logits = predict(net, data, "test", run.device, workers=workers) * run.scale
    counts, val_y, test_y = data.train_counts, data.val.y.numpy(), data.test.y.numpy()
    val, test = summarize(val_logits, val_y, counts), summarize(test_logits, test_y, counts)
    metrics = {f"val_{k}": v for k, v in val.items()} | {f"test_{k}": v for k, v in test.items()}
    taunorm = taunorm_results(net, data, run.device, workers) if isinstance(net.head, torch.nn.Linear) else {}
    experts = ({s: predict(net, data, s, run.device, workers=workers, fn=net.expert_logits) * run.scale
                for s in ("val", "test")} if hasattr(net, "expert_logits") else None)
    views = test_views(net, data, run.device, run.test_time_views, run.scale) if run.test_time_views else None
    return FitResult(val_logits, val_y, test_logits, test_y, counts, state.best_epoch, state.history, metrics,
                     {k: v.cpu() for k, v in net.state_dict().items()}, taunorm, resumed_at, experts, views)
