"""The logit adjustment paper's synthetic check (Figure 2): two unit-variance Gaussian classes
at +-(1, 1) with prior ratio rho. The balanced-Bayes rule is the midpoint hyperplane, with
balanced error Phi(-sqrt(2)) = 0.0786. Logit-adjusted loss and post-hoc adjustment (tau = 1)
reach it; ERM and weight normalisation do not.

    python -m ltray.sweep experiments/gaussian.py
    python -m ltray.report results/gaussian --table la
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

EXPERIMENT = Experiment(
    name="gaussian",
    data=DataConfig(name="gaussian-lt", rho=100, val_per_class=500),
    model=ModelConfig(name="linear"),
    methods=("ce", "logit_adjusted"),
    train=Recipe(epochs=20, batch_size=512, lr=0.1, weight_decay=0.0, warmup_epochs=0, schedule="cosine",
                 augment=False),
    search=SearchConfig(num_samples=2),
    resources=Resources(num_workers=1, cpus_per_worker=1.0),
    repeats=3,
)
