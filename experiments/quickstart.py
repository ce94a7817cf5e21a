"""Quickstart: five long-tail methods on digits-lt (rho = 100), a small CNN, on CPU.

    python -m ltray.sweep experiments/quickstart.py
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

EXPERIMENT = Experiment(
    name="quickstart",
    data=DataConfig(name="digits-lt", rho=100),
    model=ModelConfig(name="cnn-small"),
    methods=("ce", "logit_adjusted", "balanced_softmax", "lade", "ldam_drw"),
    # 30 epochs of 280 images: about 10 s per trial on one CPU core
    train=Recipe(epochs=30, batch_size=128, lr=0.1, warmup_epochs=5, weight_decay=5e-4),
    search=SearchConfig(num_samples=8),  # 5 methods at their defaults, then 3 TPE picks
    resources=Resources(num_workers=1, cpus_per_worker=1.0),
)
