"""The study command line: ``python -m ltray.sweep EXPERIMENT [--set ...] [--name] [--results]
[--resume] [--address]``. Parses and validates everything before Ray starts (``prepare``), hands
the study to ``ltray.sweep.study``, and prints the summary (``print_summary``). No Ray here.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import shlex
import sqlite3
import sys

from ltray import results as R
from ltray.config import Experiment, apply_overrides, describe_fields, load_experiment, validate
from ltray.datasets import resolve
from ltray.errors import LtrayError
from ltray.results import search_storage
from ltray.results.disk import check_writable
from ltray.results.schema import TrialStatus
from ltray.results.storage import join, parent, shown
from ltray.sweep import folder, lease
from ltray.sweep.interrupt import SweepInterrupted


def _fields_help(argv: list[str] | None) -> str:
    """--help's list of experiment fields: with the experiment file named, its values as the
    defaults shown (the quickstart's 30 epochs, not the dataclass's 200)."""
    args = sys.argv[1:] if argv is None else argv
    files = [x for x in args if x.endswith(".py") and not x.startswith("-")]
    exp, source = Experiment(), "the defaults of Experiment()"
    if ("-h" in args or "--help" in args) and files:
        try:
            exp, source = load_experiment(files[0]), files[0]
        except LtrayError:
            pass  # --help still answers, with the dataclass defaults
    return (f"Experiment fields, with {source} (override any with --set dotted.name=value):\n"
            + "\n".join(describe_fields(default=exp)))


def _local_resources() -> dict:
    import torch

    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def prepare(argv: list[str] | None = None) -> tuple[Experiment, argparse.Namespace, str]:
    """Parse the command line and validate everything; nothing is written and Ray is not started."""
    p = argparse.ArgumentParser(
        prog="python -m ltray.sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a study of long-tail methods: Ray Tune + Optuna over Ray Train trials.",
        epilog=_fields_help(argv))
    p.add_argument("experiment", nargs="?", help="experiment file defining EXPERIMENT = Experiment(...)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override fields by dotted path, e.g. --set train.epochs=3 methods=ce,lade")
    p.add_argument("--name", help="study name (default: the experiment's name)")
    p.add_argument("--results", default="results", help="folder (or pyarrow URI) holding studies (default: results)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study")
    p.add_argument("--address", help="Ray cluster to connect to, e.g. 127.0.0.1:6379 or auto (default: start a local "
                                     "Ray of this sweep's own, even when `ray start` runs a cluster on this machine)")
    a = p.parse_args(argv)
    if a.experiment is None and a.set and a.set[-1].endswith(".py"):
        a.experiment = a.set.pop()  # `--set k=v experiments/x.py`: --set took the file as one more value
    if a.experiment is None:
        p.error("the experiment file is missing: python -m ltray.sweep EXPERIMENT.py [--set KEY=VALUE ...]")
    exp = apply_overrides(load_experiment(a.experiment), a.set)
    if a.name is not None:  # --name "" is a bad name, not the experiment's
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
    folder.check(exp, study_dir, a.resume)
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


def main(argv: list[str] | None = None) -> int:
    try:
        exp, a, study_dir = prepare(argv)
        held = folder.take(study_dir, exp, a.resume)
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted before the study started", file=sys.stderr)
        return 130
    with lease.Renewal(study_dir, held):  # until the run ends: given back at exit
        try:
            from ltray.sweep.reconcile import prepare_search  # imports Optuna: only once the run is decided

            setup = prepare_search(exp, study_dir, resume=True) if a.resume else None  # before Ray starts
            from ltray.sweep import study  # Ray is imported from here on

            study.launch(exp, study_dir, a.address, held.run_id,
                         setup_search=(lambda: setup) if a.resume else lambda: prepare_search(exp, study_dir, False),
                         on_connected=None if a.resume else lambda: folder.write_study_files(exp, a.experiment, study_dir))
            _retire_search_copy(exp, study_dir)
        except LtrayError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except (SweepInterrupted, KeyboardInterrupt) as e:
            done = f"{e}; " if str(e) else ""
            print(f"interrupted: {done}go on with: {resume_command(argv)}", file=sys.stderr, flush=True)
            return 130  # the shell's convention for a command stopped by SIGINT
    return 0 if print_summary(study_dir) else 1


def _retire_search_copy(exp, study_dir: str) -> None:
    try:
        search_storage.retire(exp.search.storage, study_dir)
    except (OSError, ValueError, sqlite3.Error) as e:  # pyarrow's errors are OSError or ValueError; the file stays for --resume
        print(f"warning: could not copy the search state to {shown(study_dir)}: {e}", flush=True)


def resume_command(argv: list[str] | None) -> str:
    """The command line that continues this study: this one with ``--resume``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", "ltray.sweep", *args, *([] if "--resume" in args else ["--resume"])])


def print_summary(study_dir: str) -> bool:
    """Per method, its selected configuration (``ltray.report.method_summary``: best mean
    validation objective over its seeds) and its seeds' mean: the rows ``ltray.report`` and the
    dashboard show. With seeds to compare, the paired table and the protocol gap follow. False
    (after one error line) when no trial of the study has a result."""
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
        ids = [tid for m in summary for tid in m["trial_ids"]]  # the selected configurations' trials only
        tables = {**R.load_study(study_dir, ("logits", "per_class", "epochs"), trial_ids=ids), "trials": t}
        try:
            print("\n" + "\n".join(paired_lines(tables, "ce") + [""] + gap_lines(tables, "ce")))
        except LtrayError as e:  # e.g. a trial's logits unreadable: the study itself is fine
            print(f"\n(no paired comparison: {e})")
    print(f"\nLook at them: python -m dashboard --results {shown(parent(study_dir))}")
    with_result = {s for s in TrialStatus if s.has_result} | {TrialStatus.STOPPED}
    if not any(s in with_result for s in t.column("status").to_pylist()):
        print(f"error: no trial of {shown(study_dir)} produced a result ({t.num_rows} rows: "
              f"{', '.join(sorted(set(t.column('status').to_pylist()))) or 'none'}); see the errors above",
              file=sys.stderr)
        return False
    return True
