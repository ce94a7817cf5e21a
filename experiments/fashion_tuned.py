"""Every method tuned on the same budget: Fashion-MNIST-LT (real 28x28 images), rho = 100, six
methods with six configurations each (their published defaults first, then TPE over the
method's own knobs plus the weight decay every method shares), 3 paired seeds. Does a tuned CE
close the gap to the long-tail losses, and does the ordering at budget 1 (published defaults)
survive at budget 6?

    sudo apt-get install -y dataset-fashion-mnist      # Debian's Fashion-MNIST idx files
    python -m ltray.sweep experiments/fashion_tuned.py                 # ~1 h on 2 CPU cores
    python -m ltray.report results/fashion_tuned --table budget        # each method after n configurations
    python -m ltray.report results/fashion_tuned --table paired        # the tuned methods against tuned CE

The budget table at n = 1 compares the published defaults; at n = 6, every method after the same
search. Selection is on validation only (the mean over the 3 seeds of each configuration).
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

METHODS = ("ce", "logit_adjusted", "balanced_softmax", "ldam_drw", "lade", "cb_ce")

EXPERIMENT = Experiment(
    name="fashion_tuned",
    data=DataConfig(name="fashion-mnist-lt", rho=100),
    model=ModelConfig(name="cnn-tiny"),  # ~2 M multiply-adds per image
    methods=METHODS,
    # fashion_lt's recipe cut to 10 epochs (warm-up 1, lr x0.1 at 80% and 90%, DRW at 80%): 108 trials in ~1 h
    train=Recipe(epochs=10, batch_size=128, lr=0.1, warmup_epochs=1, weight_decay=5e-4),
    search=SearchConfig(per_method=6, shared=("train.weight_decay",), ranges={"train.weight_decay": (1e-5, 1e-2)},
                        # defaults + 2 random configurations, then TPE models the last 3 of each method
                        startup_trials=3),
    repeats=3,
    repeat_subsets=True,  # seed k: training subset k and initial weights k for every method
    resources=Resources(num_workers=1, cpus_per_worker=1.0, in_process=True),
)
