"""The logit adjustment paper's comparison (Menon et al. ICLR 2021, Table 3) on CIFAR-10-LT,
rho = 100, ResNet-32, as balanced error with mean +- 95% CI over seeds:

    ERM, weight normalisation (tau = 1 and tau* on validation), LDAM(-DRW), equalised loss,
    post-hoc logit adjustment (tau = 1 and tau* on validation), logit-adjusted loss.

The post-hoc rows come from the ERM trials' own stored logits and classifier (no retraining).

    python -m ltray.sweep experiments/la_table.py                                  # CIFAR-10-LT
    python -m ltray.sweep experiments/la_table.py --set data.name=cifar100-lt --name la_table_c100
    python -m ltray.report results/la_table --table la
    # here, without CIFAR:
    python -m ltray.sweep experiments/la_table.py --set data.name=digits-lt model.name=cnn-small train.epochs=30
"""

from ltray.config import DataConfig, Experiment, ModelConfig, Recipe, Resources, SearchConfig

METHODS = ("ce", "ldam_drw", "equalization", "logit_adjusted")

EXPERIMENT = Experiment(
    name="la_table",
    data=DataConfig(name="cifar10-lt", rho=100, root="data"),
    model=ModelConfig(name="resnet32"),
    methods=METHODS,
    # LDAM-DRW's CIFAR recipe, which the LA paper follows
    train=Recipe(epochs=200, batch_size=128, lr=0.1, momentum=0.9, weight_decay=2e-4, warmup_epochs=5,
                 milestones=(0.8, 0.9), gamma=0.1),
    search=SearchConfig(num_samples=len(METHODS)),  # every method once, at its published defaults
    resources=Resources(num_workers=1, cpus_per_worker=1.0),
    repeats=3,  # seeds 0, 1, 2 for each method: mean +- 95% CI
)
