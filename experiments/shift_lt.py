"""Multi-expert methods under shifted test label distributions: CE, balanced softmax, LADE (and
PC, a rule of every trial's shifts), RIDE, SADE (with and without its test-time aggregation, the
rule ``sade_tta``, transductive) and BalPoE on Fashion-MNIST-LT (rho 100), each at its published
defaults, 3 paired seeds, 20 epochs of ``cnn-tiny`` (multi-expert methods: 3 experts on its first
block, 0.75-wide branches).

    sudo apt-get install -y dataset-fashion-mnist
    python -m ltray.sweep experiments/shift_lt.py
    python -m ltray.report results/shift_lt --table shifts     # 11 distributions x rule, and their mean
    python -m ltray.report results/shift_lt --table experts    # each expert and their mean
    # single models at the multi-expert models' parameter count (cnn-tiny-wide: ~44 k parameters):
    python -m ltray.sweep experiments/shift_lt.py --name shift_lt_wide --set model.name=cnn-tiny-wide \
        methods=ce,balanced_softmax search.num_samples=2
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

METHODS = ("ce", "balanced_softmax", "lade", "ride", "sade", "balpoe")

EXPERIMENT = Experiment(
    name="shift_lt",
    data=DataConfig(name="fashion-mnist-lt", rho=100),
    model=ModelConfig(name="cnn-tiny"),
    methods=METHODS,
    # fashion_lt's recipe: LDAM-DRW's (and RIDE's) schedule shrunk to 20 epochs, DRW at 80%
    train=Recipe(epochs=20, batch_size=128, lr=0.1, warmup_epochs=2, weight_decay=5e-4),
    search=SearchConfig(num_samples=len(METHODS)),  # each method once, at its published defaults
    repeats=3,
    repeat_subsets=True,
    resources=Resources(num_workers=1, cpus_per_worker=1.0, in_process=True),
)
