"""The frozen groups of an experiment (``Experiment`` and its ``model``, ``search``,
``resources`` and ``posthoc`` groups; ``data`` is ``ltray.datasets.DataConfig``, ``train`` the
``Recipe``). Each group validates its own fields; checks across groups are in ``validate``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ltray.config.recipe import Recipe
from ltray.core.metrics import VAL_METRICS
from ltray.datasets import DataConfig
from ltray.errors import LtrayError
from ltray.results import search_storage

# Experiment trackers search.loggers may name (Ray Tune logger callbacks, built in ltray.loggers);
# each one's import name and ltray extra share its name: pip install 'ltray[mlflow]'
LOGGERS = ("mlflow", "wandb")


@dataclass(frozen=True)
class ModelConfig:
    """The network."""

    name: str = "cnn-small"
    """Model (backbone) name, from ltray.models.MODELS."""


@dataclass(frozen=True)
class SearchConfig:
    """How Optuna searches (through Ray Tune) over the methods and their knobs."""

    num_samples: int = 8
    """Configurations in the study (each trained on every repeat), the first of which run every
    method at its published defaults; one Optuna study picks the method. Unused with per_method."""
    per_method: int = 0
    """N > 0: every method gets exactly N distinct configurations (its published defaults first,
    then its own Optuna study over its own knobs), so methods compare on the same tuning budget;
    a method with fewer distinct configurations (no knobs) runs what it has. 0: num_samples."""
    shared: tuple[str, ...] = ()
    """Recipe fields every method searches as knobs of its own, e.g. ("train.weight_decay",), each
    with its range in ``ranges`` ({"train.weight_decay": (1e-5, 1e-2)}; log scale when low > 0);
    a method's published-defaults configuration trains at the study's recipe value."""
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
    startup_trials: int = 10
    """TPE: configurations of an Optuna study sampled at random before TPE models the rest (Optuna's
    n_startup_trials; the queued published defaults count). Lower it for small budgets (per_method=6)."""
    search_defaults_first: bool = True
    """Run each method once at its defaults before sampling (a baseline per method)."""
    seed: int = 0
    """Seed of the Optuna sampler."""
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Override a knob's search range: {"logit_adjusted.tau": (0.5, 2.0)} (--set search.ranges.logit_adjusted.tau=0.5,2);
    a shared knob's range: {"train.weight_decay": (1e-5, 1e-2)}."""
    storage: str = ""
    """Optuna's storage: "" = SQLite <study>/optuna.db (for results on a URI: a local file on the driver,
    copied to <study>/optuna.db after every change to it); an RDB URL (postgresql://user@host/db); or
    journal:PATH, Optuna's JournalStorage file (safe on NFS)."""
    loggers: tuple[str, ...] = ()
    """Also log every trial to experiment trackers through Ray Tune's callbacks: "mlflow", "wandb" (one run per trial)."""
    mlflow_uri: str = ""
    """MLflow tracking URI; "" = $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory (MLflow's own default)."""
    wandb_project: str = ""
    """Weights & Biases project; "" = the study name."""

    def validate(self, epochs: int, n_methods: int) -> None:
        """Its own fields, given the study's ``train.epochs`` and number of methods."""
        if not 1 <= self.num_samples <= 100_000:
            raise LtrayError(f"search.num_samples must be in [1, 100000], got {self.num_samples}")
        if not 0 <= self.startup_trials <= 100_000:
            raise LtrayError(f"search.startup_trials must be in [0, 100000], got {self.startup_trials}")
        if not 0 <= self.per_method <= 10_000:
            raise LtrayError(f"search.per_method must be in [0, 10000] (0: num_samples decides), got {self.per_method}")
        if not 0 <= self.seed <= 2**31 - 1:
            raise LtrayError(f"search.seed must be in [0, {2**31 - 1}], got {self.seed}")
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
        if self.search_defaults_first and not self.per_method and self.num_samples < n_methods:
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


# the exact tau curve's range (PosthocConfig.tau_max's default); train.track_test's per-epoch
# test oracle searches the same range, so the protocol gap compares like with like
ORACLE_TAU_MAX = 3.0


@dataclass(frozen=True)
class PosthocConfig:
    """Post-hoc rules applied to every trial's stored logits (never separate trials)."""

    tau_max: float = ORACLE_TAU_MAX
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
