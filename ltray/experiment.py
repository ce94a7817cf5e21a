"""Experiments: a plain Python file defines ``EXPERIMENT = Experiment(...)`` from these frozen
dataclasses. This module loads such a file, applies ``--set key=value`` overrides by dotted path
and validates everything before Ray starts. No Ray here.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import math
import os
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ltray import search_storage
from ltray.core.metrics import VAL_METRICS
from ltray.data import DataConfig, resolve
from ltray.datasets import get_dataset
from ltray.errors import LtrayError
from ltray.methods import get_method, method_names
from ltray.models import MODELS
from ltray.space import declared_ranges
from ltray.train import ORACLE_TAU_MAX, Recipe


# Experiment trackers search.loggers may name (Ray Tune logger callbacks, built in ltray.loggers);
# each one's import name and ltray extra share its name: pip install 'ltray[mlflow]'
LOGGERS = ("mlflow", "wandb")


@dataclass(frozen=True)
class ModelConfig:
    """The network."""

    name: str = "cnn-small"
    """Model: resnet32, cnn-small, linear, resnet34, resnet50 or resnext50_32x4d."""


@dataclass(frozen=True)
class SearchConfig:
    """How Optuna searches (through Ray Tune) over the methods and their knobs."""

    num_samples: int = 8
    """Trials in the study, the first of which run every method at its published defaults."""
    objectives: tuple[str, ...] = ("val_bal_acc",)
    """Validation metrics to maximise: one (TPE) or two (NSGA-II), e.g. ("val_bal_acc", "val_few")."""
    sampler: str = "auto"
    """Optuna sampler: "auto" (TPE for one objective, NSGA-II for two), "tpe", "random" or "nsga2"."""
    asha: bool = False
    """Stop unpromising trials early with ASHA, on each trial's progress (fraction of its own epochs done)."""
    grace_epochs: int = 2
    """ASHA: epochs of train.epochs every trial runs before it may be stopped (the same fraction of a
    method with its own epoch count, e.g. cRT's classifier stage)."""
    duplicate_wait_s: float = 86400.0
    """Longest wait (s) of a trial whose configuration another trial is training, if that one never ends."""
    search_defaults_first: bool = True
    """Run each method once at its defaults before sampling (a baseline per method)."""
    seed: int = 0
    """Seed of the Optuna sampler."""
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Override a knob's search range: {"logit_adjusted.tau": (0.5, 2.0)} (--set search.ranges.logit_adjusted.tau=0.5,2)."""
    storage: str = ""
    """Optuna's storage: "" = SQLite <study>/optuna.db (for results on a URI: a local file on the driver,
    copied to <study>/optuna.db at each of Tune's saves); an RDB URL (postgresql://user@host/db); or
    journal:PATH, Optuna's JournalStorage file (safe on NFS)."""
    loggers: tuple[str, ...] = ()
    """Also log every trial to experiment trackers through Ray Tune's callbacks: "mlflow", "wandb" (one run per trial)."""
    mlflow_uri: str = ""
    """MLflow tracking URI; "" = $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory (MLflow's own default)."""
    wandb_project: str = ""
    """Weights & Biases project; "" = the study name."""

    def validate(self, epochs: int, n_methods: int) -> None:
        """Its own fields, given the study's ``train.epochs`` and number of methods."""
        if self.num_samples < 1:
            raise LtrayError(f"search.num_samples must be >= 1, got {self.num_samples}")
        if len(self.objectives) not in (1, 2):
            raise LtrayError(f"search.objectives takes one or two metrics, got {self.objectives}")
        bad = [o for o in self.objectives if o not in VAL_METRICS]
        if bad:
            raise LtrayError(f"search.objectives must be validation metrics ({', '.join(VAL_METRICS)}); got {bad}. "
                             "Test metrics are reported, never tuned on.")
        if self.sampler not in ("auto", "tpe", "random", "nsga2"):
            raise LtrayError(f"search.sampler must be auto, tpe, random or nsga2, got {self.sampler!r}")
        if self.sampler == "tpe" and len(self.objectives) == 2:
            raise LtrayError("two objectives need search.sampler nsga2 (or auto)")
        if self.asha and len(self.objectives) == 2:
            raise LtrayError("ASHA stops on one metric; use one objective with search.asha=true")
        if self.asha and not 1 <= self.grace_epochs < epochs:
            raise LtrayError(f"search.grace_epochs must be in [1, train.epochs={epochs}), got {self.grace_epochs}")
        search_storage.check(self.storage)
        if not self.duplicate_wait_s > 0:
            raise LtrayError(f"search.duplicate_wait_s must be > 0, got {self.duplicate_wait_s}")
        unknown = [name for name in self.loggers if name not in LOGGERS]
        if unknown:
            raise LtrayError(f"search.loggers: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(LOGGERS)}")
        if len(set(self.loggers)) != len(self.loggers):
            raise LtrayError(f"search.loggers lists a logger twice: {self.loggers}")
        if self.search_defaults_first and self.num_samples < n_methods:
            raise LtrayError(f"search.num_samples={self.num_samples} is fewer than the {n_methods} methods; "
                             "every method runs once at its defaults first")


@dataclass(frozen=True)
class Resources:
    """What one trial uses and how many run at once."""

    num_workers: int = 1
    """Ray Train workers (DDP processes) per trial."""
    cpus_per_worker: float = 1.0
    """CPUs reserved by each worker."""
    gpus_per_worker: float = 0.0
    """GPUs per worker; fractions (e.g. 0.25) pack several small trials on one GPU."""
    max_concurrent_trials: int = 0
    """Trials at once; 0 derives it from the cluster's resources."""
    max_failures: int = 1
    """Times a failed worker group is restarted from the last checkpoint."""
    in_process: bool = False
    """Run a single-worker trial's fit in its Tune process, not a Ray Train worker group: ~14 s
    less overhead a trial on 2 CPU cores; no DDP. Tune restarts it from its last checkpoint."""
    checkpoint_every_s: float = 20.0
    """Seconds between epoch checkpoints (at most one per epoch; always the last; 0 = every epoch)."""
    min_free_mb: float = 256.0
    """Free space (MiB) the results folder needs before a trial starts; below it the study stops
    with an error and resumes with --resume once space is freed."""
    report_every_s: float = 2.0
    """Seconds between results sent to Tune (ASHA decides on these; 0 = every epoch)."""

    def validate(self, cluster: dict | None = None) -> None:
        """Its own fields; with ``cluster`` ({"CPU": n, "GPU": m}), that one trial fits on it."""
        if self.num_workers < 1:
            raise LtrayError(f"resources.num_workers must be >= 1, got {self.num_workers}")
        if self.in_process and self.num_workers != 1:
            raise LtrayError(f"resources.in_process runs one worker; got num_workers={self.num_workers} "
                             "(use in_process=false for DDP)")
        if not self.cpus_per_worker > 0 or self.gpus_per_worker < 0:
            raise LtrayError("resources.cpus_per_worker must be > 0 and gpus_per_worker >= 0")
        if min(self.max_concurrent_trials, self.max_failures, self.checkpoint_every_s, self.report_every_s,
               self.min_free_mb) < 0:
            raise LtrayError("resources.max_concurrent_trials, max_failures, checkpoint_every_s, report_every_s and "
                             "min_free_mb must be >= 0")
        if cluster is None:
            return
        need_cpu, need_gpu = self.num_workers * self.cpus_per_worker, self.num_workers * self.gpus_per_worker
        if need_cpu > cluster.get("CPU", 0) + 1e-9:
            raise LtrayError(f"one trial needs {need_cpu:g} CPUs ({self.num_workers} workers x "
                             f"{self.cpus_per_worker:g}) but the cluster has {cluster.get('CPU', 0):g}; lower "
                             "resources.num_workers or resources.cpus_per_worker")
        if need_gpu > cluster.get("GPU", 0) + 1e-9:
            raise LtrayError(f"one trial needs {need_gpu:g} GPUs but the cluster has {cluster.get('GPU', 0):g}; "
                             "set resources.gpus_per_worker=0 to train on CPU")


@dataclass(frozen=True)
class PosthocConfig:
    """Post-hoc rules applied to every trial's stored logits (never separate trials)."""

    tau_max: float = 3.0
    """Upper end of the exact tau curve; tau* is chosen on validation within [0, tau_max]."""


@dataclass(frozen=True)
class Experiment:
    """A study: data, model, methods to compare, train recipe, search, resources and seeds."""

    name: str = "study"
    """Study name: results go to <results>/<name>/."""
    data: DataConfig = field(default_factory=DataConfig)
    """The dataset and its long-tail cut."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The network."""
    methods: tuple[str, ...] = ("ce", "balanced_softmax")
    """Methods to compare (registry names); the search picks one per trial."""
    train: Recipe = field(default_factory=Recipe)
    """The training recipe."""
    search: SearchConfig = field(default_factory=SearchConfig)
    """The hyperparameter search."""
    resources: Resources = field(default_factory=Resources)
    """Per-trial resources and concurrency."""
    posthoc: PosthocConfig = field(default_factory=PosthocConfig)
    """Post-hoc evaluation of each trial."""
    seed: int = 0
    """Seed of weight initialisation and batch order (the data subset has data.subset_seed)."""
    repeats: int = 1
    """Seeds per configuration: seed, seed+1, ...; each repeat is its own trial row."""
    repeat_subsets: bool = True
    """Each repeat also draws its own training subset and validation split (data.subset_seed +
    repeat), the same for every method (paired), as long-tail papers report: the subset is part
    of the noise. false keeps one subset and varies only the weights' seed and batch order."""
    pretrain: str = ""
    """Self-supervised pre-training shared by every trial: "" (none) or "rotation" (SSP)."""
    recipe_overrides: dict[str, float] = field(default_factory=dict)
    """Per-method recipe changes: {"crt.lr": 0.01} (--set recipe_overrides.crt.lr=0.01)."""


# ---------------------------------------------------------------- loading

def load_experiment(path: str | os.PathLike) -> Experiment:
    """Execute an experiment file and return its ``EXPERIMENT``; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise LtrayError(f"experiment file {p} does not exist")
    spec = importlib.util.spec_from_file_location(f"ltray_experiment_{p.stem}", p)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except LtrayError:
        raise
    except Exception as e:
        raise LtrayError(f"{p} failed to run: {type(e).__name__}: {e}") from e
    exp = getattr(module, "EXPERIMENT", None)
    if not isinstance(exp, Experiment):
        raise LtrayError(f"{p} must define EXPERIMENT = Experiment(...), found {type(exp).__name__}")
    return exp


def _coerce(text: str, tp, where: str):
    """Parse an override value for a field of type ``tp`` (str, int, float, bool, tuples)."""
    origin = typing.get_origin(tp)
    if tp is str:
        return text
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise LtrayError(f"--set {where}: expected true/false, got {text!r}")
    if tp in (int, float):
        try:
            v = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise LtrayError(f"--set {where}: expected a {tp.__name__}, got {text!r}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (tp is int and not float(v).is_integer()):
            raise LtrayError(f"--set {where}: expected a {tp.__name__}, got {text!r}")
        return tp(v)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        parts = [s for s in (x.strip() for x in text.strip().strip("()[]").split(",")) if s]
        return tuple(_coerce(s.strip("'\""), inner, where) for s in parts)
    raise LtrayError(f"--set {where}: cannot set a field of type {tp}")


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def apply_overrides(exp: Experiment, items: list[str]) -> Experiment:
    """Return a copy with ``dotted.path=value`` overrides applied (mmpretrain's --cfg-option)."""
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LtrayError(f"--set wants key=value (e.g. train.epochs=3), got {item!r}")
        exp = _set(exp, key.strip().split("."), value, key.strip())
    return exp


def _set(obj, path: list[str], value: str, where: str):
    names = {f.name for f in fields(obj)}
    head = path[0]
    if head not in names:
        raise LtrayError(f"--set {where}: {type(obj).__name__} has no field {head!r}; it has {', '.join(sorted(names))}")
    tp = _hints(type(obj))[head]
    if typing.get_origin(tp) is dict:
        key_tp, val_tp = typing.get_args(tp)
        if len(path) < 2:
            raise LtrayError(f"--set {where}: name the entry, e.g. --set {where}.logit_adjusted.tau=0.5,2")
        return replace(obj, **{head: {**getattr(obj, head), ".".join(path[1:]): _coerce(value, val_tp, where)}})
    if len(path) == 1:
        if dataclasses.is_dataclass(tp):
            raise LtrayError(f"--set {where}: {head} is a group; set one of its fields, e.g. {where}.{fields(tp)[0].name}=...")
        return replace(obj, **{head: _coerce(value, tp, where)})
    child = getattr(obj, head)
    if not dataclasses.is_dataclass(child):
        raise LtrayError(f"--set {where}: {head} has no fields")
    return replace(obj, **{head: _set(child, path[1:], value, where)})


# ---------------------------------------------------------------- validation

def _check_types(obj, where: str = "") -> None:
    hints = _hints(type(obj))
    for f in fields(obj):
        v, tp, name = getattr(obj, f.name), hints[f.name], f"{where}{f.name}"
        if dataclasses.is_dataclass(tp):
            if not isinstance(v, tp):
                raise LtrayError(f"{name} must be a {tp.__name__}, got {type(v).__name__}")
            _check_types(v, name + ".")
        elif typing.get_origin(tp) is dict:
            if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
                raise LtrayError(f"{name} must be a dict with string keys, got {v!r}")
            value_tp = typing.get_args(tp)[1]
            for k, val in v.items():
                if value_tp is float:
                    if not _is(val, float) or not math.isfinite(val):
                        raise LtrayError(f"{name}[{k!r}] must be a number, got {val!r}")
                elif not isinstance(val, (tuple, list)) or len(val) != 2 or not all(_is(x, float) for x in val) \
                        or not all(math.isfinite(x) for x in val):
                    raise LtrayError(f"{name}[{k!r}] must be a (low, high) pair of numbers, got {val!r}")
        elif typing.get_origin(tp) is tuple:
            inner = typing.get_args(tp)[0]
            if not isinstance(v, (tuple, list)) or not all(_is(x, inner) for x in v):
                raise LtrayError(f"{name} must be a tuple of {inner.__name__}, got {v!r}")
            if inner is float and not all(math.isfinite(x) for x in v):
                raise LtrayError(f"{name} must hold finite numbers, got {v!r}")
        elif not _is(v, tp):
            raise LtrayError(f"{name} must be a {tp.__name__}, got {v!r}")
        elif tp is float and not math.isfinite(v):
            raise LtrayError(f"{name} must be a finite number, got {v!r}")


def _is(v, tp) -> bool:
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, tp)


def validate(exp: Experiment, cluster: dict | None = None, local_data: bool = True) -> None:
    """Check everything that can be checked before Ray starts; raise one LtrayError.

    Each config group checks its own fields (``SearchConfig.validate``, ``Resources.validate``,
    ``check_data``, ``Recipe.validate``); this adds the checks that span groups. ``cluster``
    ({"CPU": n, "GPU": m}) are the resources available; a trial that cannot fit is refused.
    Missing data is found here too, unless ``local_data`` is False (a job whose data lives on
    the cluster).
    """
    _check_types(exp)
    if not exp.name or any(c in exp.name for c in "/\\") or exp.name.startswith("."):
        raise LtrayError(f"name must be a plain folder name, got {exp.name!r}")
    if not exp.methods:
        raise LtrayError("methods is empty; name at least one of " + ", ".join(method_names()))
    for m in exp.methods:
        get_method(m)
    if len(set(exp.methods)) != len(exp.methods):
        raise LtrayError(f"methods lists a method twice: {exp.methods}")
    if exp.model.name not in MODELS:
        raise LtrayError(f"unknown model {exp.model.name!r}; choose one of {', '.join(MODELS)}")
    dataset = check_data(exp.data, local_data)
    exp.train.validate()
    exp.search.validate(exp.train.epochs, len(exp.methods))
    _check_ranges(exp)
    _check_recipe_overrides(exp)
    exp.resources.validate(cluster)
    if exp.pretrain not in ("", "rotation"):
        raise LtrayError(f"pretrain must be '' or 'rotation', got {exp.pretrain!r}")
    if exp.pretrain and not dataset.square_images:
        raise LtrayError(f"pretrain=rotation needs square in-memory images, not {exp.data.name}")
    if exp.repeats < 1:
        raise LtrayError(f"repeats must be >= 1, got {exp.repeats}")
    if exp.repeats > 1 and len(exp.search.objectives) == 2:  # Tune's Repeater averages one metric only
        raise LtrayError("repeats > 1 needs one objective (Tune's Repeater averages a single metric)")
    if exp.train.track_test and exp.posthoc.tau_max != ORACLE_TAU_MAX:
        raise LtrayError(f"train.track_test's per-epoch test oracle searches tau in [0, {ORACLE_TAU_MAX:g}]; set "
                         f"posthoc.tau_max={ORACLE_TAU_MAX:g} so that the protocol gap compares like with like")
    if not exp.posthoc.tau_max > 0:
        raise LtrayError(f"posthoc.tau_max must be > 0, got {exp.posthoc.tau_max}")
    if dataset.points != (exp.model.name == "linear"):
        raise LtrayError(f"{exp.data.name} is 2-d points: use model.name=linear" if dataset.points else
                         f"model linear is for points (gaussian-lt), not {exp.data.name}")


def check_data(cfg: DataConfig, local_data: bool = True):
    """The data config on its own: a registered dataset, rho, counts, the validation size it has
    room for, and (``local_data``) that its files are there. Returns the dataset's entry."""
    dataset = get_dataset(cfg.name)
    if not cfg.rho >= 1:
        raise LtrayError(f"data.rho must be >= 1 (n_max / n_min), got {cfg.rho}")
    resolve(cfg)
    if cfg.counts:
        if not dataset.classes or dataset.points:
            raise LtrayError(f"data.counts applies to image datasets with a fixed class count, not {cfg.name}")
        if len(cfg.counts) != dataset.classes or min(cfg.counts) < 1:
            raise LtrayError(f"data.counts needs {dataset.classes} positive counts for {cfg.name}, got {cfg.counts}")
    if local_data:
        dataset.check(cfg)
    return dataset


def _check_recipe_overrides(exp: Experiment) -> None:
    trained = stage_methods(exp.methods)
    numeric = {f.name for f in fields(Recipe) if _hints(Recipe)[f.name] in (int, float)}
    for key in exp.recipe_overrides:
        method, _, fname = key.partition(".")
        if method not in exp.methods and method not in trained:
            raise LtrayError(f"recipe_overrides[{key!r}]: {method!r} is not among methods {exp.methods} "
                             f"nor a shared stage they train ({', '.join(trained) or 'none'})")
        if fname not in numeric:
            raise LtrayError(f"recipe_overrides[{key!r}]: the recipe has no numeric field {fname!r}; "
                             f"choose from {', '.join(sorted(numeric))}")
    for m in (*exp.methods, *trained):
        method_recipe(exp, m).validate()


def _check_ranges(exp: Experiment) -> None:
    for key, (lo, hi) in exp.search.ranges.items():
        method, _, knob = key.partition(".")
        if method not in exp.methods:
            raise LtrayError(f"search.ranges[{key!r}]: {method!r} is not among methods {exp.methods}")
        declared = declared_ranges(method)
        if knob not in declared:
            raise LtrayError(f"search.ranges[{key!r}]: {method} searches no knob {knob!r}; "
                             f"it searches {', '.join(declared) or 'nothing'}")
        if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
            raise LtrayError(f"search.ranges[{key!r}] = ({lo}, {hi}) is empty or inverted: need low < high")
        if declared[knob][2] and lo <= 0:
            raise LtrayError(f"search.ranges[{key!r}]: {knob} is searched on a log scale, so low must be > 0")
        default = get_method(method).defaults[knob]
        if exp.search.search_defaults_first and not lo <= default <= hi:
            raise LtrayError(f"search.ranges[{key!r}] = ({lo}, {hi}) excludes the default {knob}={default}, which "
                             "runs first; widen the range or set search.search_defaults_first=false")


def stage_methods(methods: tuple[str, ...]) -> tuple[str, ...]:
    """Methods trained once per study as a shared stage for these (DiVE's teacher, cRT's backbone)."""
    out = []
    for name in methods:
        m = get_method(name)
        out += [s for s in (m.teacher, m.backbone_from) if s and s not in out]
    return tuple(out)


def effective_recipe(exp: Experiment, method: str, hp: dict | None = None) -> Recipe:
    """The recipe one trial of ``method`` trains with: the study's recipe, then this method's
    ``recipe_overrides``, then the method's own changes (cRT's short class-balanced stage).
    Everything that depends on how a trial trained (fit, its stage, its post-hoc rules) reads this."""
    m = get_method(method)
    return m.recipe(method_recipe(exp, method), m.hp(hp))


def trial_data(exp: Experiment, repeat: int) -> DataConfig:
    """The data of a study's ``repeat``-th seed: its own subset when ``repeat_subsets``."""
    data = resolve(exp.data)
    return replace(data, subset_seed=data.subset_seed + repeat) if exp.repeat_subsets and repeat else data


def method_recipe(exp: Experiment, method: str) -> Recipe:
    """The study's recipe with this method's ``recipe_overrides`` applied."""
    changes = {}
    for key, value in exp.recipe_overrides.items():
        m, _, fname = key.partition(".")
        if m == method:
            changes[fname] = int(value) if _hints(Recipe)[fname] is int else float(value)
    return replace(exp.train, **changes) if changes else exp.train


# ---------------------------------------------------------------- help text

def _field_docs(cls) -> dict[str, str]:
    """The one-line docstring under each dataclass field (CleanRL style), read from the source."""
    import inspect

    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) \
                and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
            docs[a.target.id] = b.value.value.strip()
    return docs


def describe_fields(cls=Experiment, prefix: str = "", default=None) -> list[str]:
    """``dotted.name (type, default): doc`` for every settable field, for --help."""
    default = default if default is not None else cls()
    docs, hints, lines = _field_docs(cls), _hints(cls), []
    for f in fields(cls):
        tp, value = hints[f.name], getattr(default, f.name)
        if dataclasses.is_dataclass(tp):
            lines += describe_fields(tp, f"{prefix}{f.name}.", value)
        else:
            tname = getattr(tp, "__name__", str(tp)).replace("typing.", "")
            if typing.get_origin(tp) is tuple:
                tname = f"tuple[{typing.get_args(tp)[0].__name__}]"
            if typing.get_origin(tp) is dict:
                tname = "dict"
            lines.append(f"  {prefix}{f.name} ({tname}, default {value!r}): {docs.get(f.name, '')}")
    return lines


def to_dict(exp: Experiment) -> dict:
    return dataclasses.asdict(exp)
