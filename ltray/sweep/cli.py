"""The study command line: ``python -m ltray.sweep EXPERIMENT [--set ...] [--name] [--results]
[--resume] [--address]``. Parses and validates everything before Ray starts (``prepare``), hands
the study to ``ltray.sweep.study``, and prints the summary (``print_summary``). No Ray here.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

from ltray import results as R
from ltray.config import Experiment, apply_overrides, describe_fields, load_experiment, to_dict, validate
from ltray.datasets import resolve
from ltray.errors import LtrayError
from ltray.results import search_storage
from ltray.results.disk import check_writable
from ltray.results.schema import TrialStatus
from ltray.results.storage import join, open_store, parent, shown


def _local_resources() -> dict:
    import torch

    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def _write_study_files(exp: Experiment, source: str, study_dir: str) -> None:
    store = open_store(study_dir)
    with open(source, "rb") as f:
        store.write_bytes(f.read(), "experiment.py")
    store.write_bytes(json.dumps(to_dict(exp), indent=2, default=list).encode(), "experiment.json")
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    store.write_bytes(freeze.encode(), "requirements.txt")


def prepare(argv: list[str] | None = None) -> tuple[Experiment, argparse.Namespace, str]:
    """Parse the command line and validate everything; nothing is written and Ray is not started."""
    p = argparse.ArgumentParser(
        prog="python -m ltray.sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a study of long-tail methods: Ray Tune + Optuna over Ray Train trials.",
        epilog="Experiment fields (override any with --set dotted.name=value):\n" + "\n".join(describe_fields()))
    p.add_argument("experiment", help="experiment file defining EXPERIMENT = Experiment(...)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override fields by dotted path, e.g. --set train.epochs=3 methods=ce,lade")
    p.add_argument("--name", help="study name (default: the experiment's name)")
    p.add_argument("--results", default="results", help="folder (or pyarrow URI) holding studies (default: results)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study")
    p.add_argument("--address", help="Ray cluster to connect to (default: start a local one)")
    a = p.parse_args(argv)
    exp = apply_overrides(load_experiment(a.experiment), a.set)
    if a.name:
        exp = dataclasses.replace(exp, name=a.name)
    # inside a Ray Job (RAY_ADDRESS set) or with --address, the cluster's resources are checked
    # once connected; locally they are checked now, before Ray starts
    on_cluster = bool(a.address or os.environ.get("RAY_ADDRESS"))
    validate(exp, None if on_cluster else _local_resources())
    _check_loggers_installed(exp.search.loggers)
    # dataset defaults made explicit: experiment.json records what the trials use (digits-lt's 15
    # validation images per class, not a 0 or a number it cannot hold)
    exp = dataclasses.replace(exp, data=resolve(exp.data),
                              search=dataclasses.replace(exp.search, storage=search_storage.absolute(exp.search.storage)))
    study_dir = join(a.results, exp.name)
    check_writable(a.results, exp.resources.min_free_mb)
    store = open_store(study_dir)
    existing = R.finished_trials(study_dir) if store.is_dir() else {}
    if existing and not a.resume:
        raise LtrayError(f"{study_dir} already holds {len(existing)} trials; pass --resume to continue it or "
                         "--name to start a new study (nothing was changed)")
    if a.resume:
        if not store.is_dir():
            raise LtrayError(f"--resume: no study at {study_dir}")
        if store.is_file("experiment.json") and \
                not _same_experiment(json.loads(store.read_bytes("experiment.json")), exp):
            raise LtrayError(f"--resume: the experiment differs from the one {study_dir} was started with "
                             f"({join(study_dir, 'experiment.json')}); resume with the same file and --set values")
    if exp.search.storage:  # an unreachable database fails now, not after Ray has started
        search_storage.open_storage(exp.search.storage, study_dir)
    return exp, a, study_dir


def _check_loggers_installed(loggers: tuple[str, ...]) -> None:
    """Fail before Ray starts if a logger's package is missing here, where the sweep's driver
    (and so Tune's logger callbacks) runs; in a Ray Job that is the cluster. Each logger's import
    name and ltray extra are its own name (``ltray.experiment.LOGGERS``)."""
    for name in loggers:
        if importlib.util.find_spec(name) is None:
            raise LtrayError(f"search.loggers={name} needs the {name} package: pip install 'ltray[{name}]'")


def _same_experiment(saved: dict, exp: Experiment) -> bool:
    """Whether ``exp`` is the experiment a study was started with (its experiment.json). A field
    added to ltray since then, which the file lacks, counts as the same while it holds its default."""
    plain = lambda e: json.loads(json.dumps(to_dict(e), default=list))  # noqa: E731
    return saved == _without_new_defaults(plain(exp), saved, plain(Experiment()))


def _without_new_defaults(now: dict, saved: dict, default: dict) -> dict:
    out = {}
    for k, v in now.items():
        if k not in saved and k in default and v == default[k]:
            continue
        if isinstance(v, dict) and isinstance(saved.get(k), dict) and isinstance(default.get(k), dict):
            v = _without_new_defaults(v, saved[k], default[k])
        out[k] = v
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        exp, a, study_dir = prepare(argv)
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ltray.sweep import study  # Ray is imported from here on

    try:
        study.launch(exp, study_dir, a.address, a.resume,
                     on_connected=None if a.resume else lambda: _write_study_files(exp, a.experiment, study_dir))
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_summary(study_dir)
    return 0


def print_summary(study_dir: str) -> None:
    """Per method, its selected configuration (``ltray.report.method_summary``: best mean
    validation objective over its seeds) and its seeds' mean: the rows ``ltray.report`` and the
    dashboard show. With seeds to compare, the paired table and the protocol gap follow."""
    from ltray.report import SUMMARY_COLUMNS, gap_lines, method_summary, paired_lines  # imports torch: only here

    t = R.load_study(study_dir, ("trials",))["trials"]
    print(f"\n{t.num_rows} trials in {shown(study_dir)}")
    print(f"{'method':<18} {'seeds':>5} {'val':>7} {'test':>7} {'+post-hoc':>9} {'many':>7} {'medium':>7} {'few':>7}")
    summary = method_summary(t)
    for m in summary:
        print(f"{m['method']:<18} {m['n']:>5} "
              + " ".join(f"{m[c]['mean'] * 100:{w}.2f}" for c, w in zip(SUMMARY_COLUMNS, (7, 7, 9, 7, 7, 7))))
    for r in t.to_pylist():
        if r["status"] != TrialStatus.COMPLETED:
            print(f"  {r['trial_id']} {r['status']}: {r['error'][:200]}")
    print("(per method: the configuration with the best mean validation balanced accuracy over its seeds; "
          "mean over those seeds)")
    if any(m["method"] == "ce" for m in summary) and max(m["n"] for m in summary) > 1:  # seeds to compare
        tables = R.load_study(study_dir, ("trials", "logits", "per_class", "epochs"))
        try:
            print("\n" + "\n".join(paired_lines(tables, "ce") + [""] + gap_lines(tables, "ce")))
        except LtrayError as e:  # e.g. a trial's logits unreadable: the study itself is fine
            print(f"\n(no paired comparison: {e})")
    print(f"\nLook at them: python -m dashboard --results {shown(parent(study_dir))}")
